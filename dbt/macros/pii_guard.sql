{#- A mart's post-hook: the build fails when a row it wrote still matches a PII pattern
    (`contains_pii`, the redaction's own patterns) in one of `columns`. Post-hooks run inside the
    model's transaction, so a failure rolls back everything the build wrote: such a row never
    lands in the mart. Only the rows this transaction wrote are read (their `xmin` is its
    transaction id): a full build checks every row, an incremental one what it merged. The error
    names the rows by `key` (the first ten), never their text.

    The patterns run in `<schema>.contains_pii`, a PARALLEL SAFE function installed here
    (`install_function`), so Postgres can scan the rows in parallel workers, on every core; the
    transaction id is read once, before the scan (reading it is not parallel safe). -#}
{% macro refuse_written_pii(key, columns) -%}
{{ contains_pii_function(this.schema) }};
{{ parallel_scans_of_any_size() }};
do $guard$
declare
    written xid := pg_current_xact_id()::xid;
    found bigint;
    shown text;
begin
    select count(*), string_agg(written_rows.key, ', ' order by written_rows.key)
                         filter (where written_rows.n <= 10)
    into found, shown
    from (
        select {{ key }}::text as key, row_number() over (order by {{ key }}) as n
        from {{ this }}
        where xmin = written
          and (
            {%- for column in columns %}
            {{ this.schema }}.contains_pii({{ column }}){{ " or" if not loop.last }}
            {%- endfor %}
          )
    ) as written_rows;
    if found > 0 then
        raise exception '% row(s) of {{ this }} still match a PII pattern in {{ columns | join(" or ") }}: %',
            found, shown;
    end if;
end
$guard$
{%- endmacro %}

{#- `<schema>.contains_pii(value)`: whether `value` (null: '') still matches a PII pattern. Its
    cost to the planner, in `cpu_operator_cost` units: eleven regular expressions over a
    document, about 0.2 ms. -#}
{% macro contains_pii_function(schema) -%}
{%- set definition -%}
create or replace function {{ schema }}.contains_pii(value text)
returns boolean
language plpgsql immutable parallel safe cost 5000
as $contains$
begin
    value := coalesce(value, '');
    return {{ contains_pii('value') }};
end
$contains$
{%- endset -%}
{{ install_function(schema, 'contains_pii', 'text', definition) }}
{%- endmacro %}
