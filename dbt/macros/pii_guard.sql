{#- A mart's post-hook: the build fails when a row it wrote still matches a PII pattern
    (`contains_pii`, the redaction's own patterns) in one of `columns`. Post-hooks run inside the
    model's transaction, so a failure rolls back everything the build wrote: such a row never
    lands in the mart. Only the rows this transaction wrote are read (their `xmin` is its
    transaction id): a full build checks every row, an incremental one what it merged. The error
    names the rows by `key` (the first ten), never their text. -#}
{% macro refuse_written_pii(key, columns) -%}
do $guard$
declare
    found bigint;
    shown text;
begin
    select count(*), string_agg(written.key, ', ' order by written.key) filter (where written.n <= 10)
    into found, shown
    from (
        select {{ key }}::text as key, row_number() over (order by {{ key }}) as n
        from {{ this }}
        where xmin = pg_current_xact_id()::xid
          and (
            {%- for column in columns %}
            {{ contains_pii("coalesce(" ~ column ~ ", '')") }}{{ " or" if not loop.last }}
            {%- endfor %}
          )
    ) as written;
    if found > 0 then
        raise exception '% row(s) of {{ this }} still match a PII pattern in {{ columns | join(" or ") }}: %',
            found, shown;
    end if;
end
$guard$
{%- endmacro %}
