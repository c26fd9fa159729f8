{#-
  PII redaction with Postgres regular expressions. Each kind has one pattern macro, used both to
  redact (`redact_pii`) and to look for leftovers (`tests/assert_no_pii_in_marts.sql`).
  Order matters: secrets first (a key can contain digit runs that look like a phone number), then
  emails, phones and street addresses. Placeholders are typed so the text still reads naturally.
-#}

{#- Vendor key formats: OpenAI-style `sk-…`, GitHub `ghp_…`/`github_pat_…`, AWS access key ids,
    Slack and Google API keys. -#}
{% macro pii_secret_pattern() -%}
'(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}|(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}|(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{30,}|(?<![A-Za-z0-9])(AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])|(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}|(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}'
{%- endmacro %}

{#- A PEM private key block (a pattern of its own: Postgres makes any alternation greedy). -#}
{% macro pii_private_key_pattern() -%}
'-----BEGIN.{0,40}?PRIVATE KEY-----.*?-----END[A-Z ]{0,40}PRIVATE KEY-----'
{%- endmacro %}

{#- `api_key = "…"`, `password: '…'`, `OPENAI_API_KEY=…`, `Authorization: Bearer …`: the name
    (and quotes) are kept, the value replaced. Quoted values of 8+ characters, bare ones of 16+ with a digit. -#}
{% macro pii_secret_name() -%}
(?<![A-Za-z0-9])(?:api[_-]?key|api[_-]?secret|secret[_-]?key|secret|access[_-]?key|access[_-]?token|auth[_-]?token|bearer[_-]?token|client[_-]?secret|password|passwd|pwd)["'']?[ \t]*[:=][ \t]*
{%- endmacro %}

{% macro pii_quoted_secret_pattern() -%}
'({{ pii_secret_name() }}["''])[^"''\s\[][^"''\s]{7,}(["''])'
{%- endmacro %}

{% macro pii_bare_secret_pattern() -%}
'({{ pii_secret_name() }})(?=[A-Za-z_/+=-]*[0-9])[A-Za-z0-9_/+=-]{16,}|(bearer[ \t]+)[A-Za-z0-9._~+/-]{20,}=*'
{%- endmacro %}

{% macro pii_email_pattern() -%}
'(?<![A-Za-z0-9._%+-])(?!git@)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])'
{%- endmacro %}

{#- International (+46 70 123 45 67, +1 (555) 123-4567), North American ((555) 123-4567,
    555-123-4567) and Nordic national (070-123 45 67, 08-123 456 78) numbers. -#}
{% macro pii_phone_pattern() -%}
'(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}[ .-]?(\([0-9]{1,4}\)|[0-9]{1,4})([ .-]?[0-9]{2,4}){2,4}(?![0-9])|(?<![0-9A-Za-z])(\([0-9]{3}\)[ ]?|[0-9]{3}[.-])[0-9]{3}[ .-][0-9]{4}(?![0-9])|(?<![0-9A-Za-z+.-])0[0-9]{1,3}[ -][0-9]{2,3}([ -]?[0-9]{2,3}){2}(?![0-9])'
{%- endmacro %}

{#- "12 Main Street", "221B Baker St.", and Nordic/German street names with a number:
    "Storgatan 5", "Kungsvägen 12A", "Hauptstraße 3". Case-sensitive on purpose. -#}
{% macro pii_address_pattern() -%}
'(?<![0-9A-Za-z])[0-9]{1,5}[A-Z]?( [A-Z][a-z]+){1,3} (Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Square|Sq)(?![A-Za-z])\.?|(?<![A-Za-zÅÄÖåäöÆØæø])[A-ZÅÄÖÆØ][a-zåäöæøéü]+(gatan|vägen|gränd|torget|stigen|backen|allén|gata|väg|gade|vej|veien|gaten|straße|strasse|weg|platz) [0-9]{1,4}[A-Za-z]?(?![0-9A-Za-z])'
{%- endmacro %}

{#- The text with every kind of PII replaced by its placeholder. -#}
{% macro redact_pii(expr) -%}
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
        {{ expr }},
        {{ pii_private_key_pattern() }}, '[SECRET]', 'g'),
        {{ pii_secret_pattern() }}, '[SECRET]', 'g'),
        {{ pii_quoted_secret_pattern() }}, '\1[SECRET]\2', 'gi'),
        {{ pii_bare_secret_pattern() }}, '\1\2[SECRET]', 'gi'),
        {{ pii_email_pattern() }}, '[EMAIL]', 'g'),
        {{ pii_phone_pattern() }}, '[PHONE]', 'g'),
        {{ pii_address_pattern() }}, '[ADDRESS]', 'g')
{%- endmacro %}

{#- True when the text still holds anything a PII pattern matches. -#}
{% macro contains_pii(expr) -%}
    (
        {{ expr }} ~ {{ pii_private_key_pattern() }}
        or {{ expr }} ~ {{ pii_secret_pattern() }}
        or {{ expr }} ~* {{ pii_quoted_secret_pattern() }}
        or {{ expr }} ~* {{ pii_bare_secret_pattern() }}
        or {{ expr }} ~ {{ pii_email_pattern() }}
        or {{ expr }} ~ {{ pii_phone_pattern() }}
        or {{ expr }} ~ {{ pii_address_pattern() }}
    )
{%- endmacro %}

{#- How many placeholders a redacted text holds (a sudden jump flags a rule matching too much). -#}
{% macro count_redactions(expr) -%}
    regexp_count({{ expr }}, '\[(EMAIL|PHONE|ADDRESS|SECRET)\]')
{%- endmacro %}
