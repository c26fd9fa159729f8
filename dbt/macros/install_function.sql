{#- Statements that create or replace the database function `schema.name(arg_types)` as
    `definition` (its whole `create or replace function` statement) when it is missing or was
    made from another definition: a digest of the definition is the function's comment. An
    advisory lock held to the end of the transaction makes builds running at once take turns,
    so they never race to create it. Meant for a model's hooks, which run in its transaction. -#}
{% macro install_function(schema, name, arg_types, definition) -%}
{%- set signature = schema ~ "." ~ name ~ "(" ~ arg_types ~ ")" -%}
{%- set digest = local_md5(definition) -%}
do $install$
begin
    perform pg_advisory_xact_lock(hashtext('{{ signature }}'));
    if obj_description(to_regprocedure('{{ signature }}'), 'pg_proc')
       is distinct from '{{ digest }}' then
        drop function if exists {{ signature }};  -- a new definition may return other columns
        {{ definition }};
        comment on function {{ signature }} is '{{ digest }}';
    end if;
end
$install$
{%- endmacro %}

{#- Lets the rest of the transaction's plans scan tables of any size in parallel: the text
    tables' bodies live in TOAST, so the heap that decides (`min_parallel_table_scan_size`) looks
    small however much text they hold; the costs then decide. For a hook beside a function above,
    whose real cost is what makes a parallel plan worth it. -#}
{% macro parallel_scans_of_any_size() -%}
set local min_parallel_table_scan_size = 0
{%- endmacro %}
