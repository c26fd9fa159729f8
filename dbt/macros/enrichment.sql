{#- The table `twin.warehouse.enrich` writes, defined once: dbt runs this on-run-start (so a
    `dbt build` on a fresh warehouse works before the enrichment step ever ran) and the enrichment
    step reads and runs the same body (`enrichment_ddl()`): keep it plain SQL, no Jinja. -#}
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
