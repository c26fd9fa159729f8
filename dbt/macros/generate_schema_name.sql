{#- Custom schemas are used exactly as named (`staging`, `intermediate`, `marts`), with no target
    prefix: every environment is its own database, so the prefix would only rename the contract. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
