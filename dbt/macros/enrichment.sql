{#- The table `twin.warehouse.enrich` writes (it creates it too); created here as well so that a
    `dbt build` on a fresh warehouse compiles and runs before the enrichment step has ever run.
    Keep the columns in step with `twin/warehouse/enrich.py` (DDL). -#}
{% macro create_enrichment_table() -%}
create schema if not exists intermediate;
create table if not exists intermediate.document_enrichment (
    document_id          text primary key,
    clean_hash           text not null,
    language             text not null,
    language_confidence  double precision not null,
    near_duplicate_of    text,
    jaccard              double precision,
    shingle_count        integer not null,
    minhash              bytea not null,
    computed_at          timestamptz not null default now()
);
{%- endmacro %}
