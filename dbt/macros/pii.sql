{#-
  GENERATED from include/twin/domain/pii.py by `python -m twin.quality.pii_macros`: do not edit.
  PII redaction with Postgres regular expressions, one pattern macro per rule, used to redact
  (`redact_pii`) and to look for leftovers (`contains_pii`, macros/pii_guard.sql).
  The marts quality gate checks with an independent detector (twin.quality.pii_detect).
-#}

{% macro pii_private_key_pattern() -%}
'-----BEGIN.{0,40}?PRIVATE KEY-----.*?-----END[A-Z ]{0,40}PRIVATE KEY-----'
{%- endmacro %}

{% macro pii_token_pattern() -%}
'(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}|(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}|(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{30,}|(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])|(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{10,}|(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}|(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}|(?<![A-Za-z0-9])(?:sk|rk)_live_[A-Za-z0-9]{20,}|(?<![A-Za-z0-9])pypi-[A-Za-z0-9_-]{50,}|(?<![A-Za-z0-9])ya29\.[A-Za-z0-9_-]{20,}'
{%- endmacro %}

{% macro pii_quoted_secret_pattern() -%}
'((?<![A-Za-z0-9])(?:api[_-]?key|api[_-]?secret|secret[_-]?key|secret|access[_-]?key|access[_-]?token|auth[_-]?token|bearer[_-]?token|client[_-]?secret|private[_-]?key(?:[_-]?id)?|password|passwd|pwd|token)[\"'']?[ \t]*[:=][ \t]*[\"''])[^\"''\s\[][^\"''\s]{7,}([\"''])'
{%- endmacro %}

{% macro pii_bare_secret_pattern() -%}
'((?<![A-Za-z0-9])(?:api[_-]?key|api[_-]?secret|secret[_-]?key|secret|access[_-]?key|access[_-]?token|auth[_-]?token|bearer[_-]?token|client[_-]?secret|private[_-]?key(?:[_-]?id)?|password|passwd|pwd|token)[\"'']?[ \t]*[:=][ \t]*)(?=[A-Za-z_/+=-]*[0-9])[A-Za-z0-9_/+=-]{16,}|(bearer[ \t]+)[A-Za-z0-9._~+/-]{20,}=*'
{%- endmacro %}

{% macro pii_url_credentials_pattern() -%}
'(://[A-Za-z0-9._%-]+:)[^@/\s]{3,}(@)'
{%- endmacro %}

{% macro pii_email_pattern() -%}
'(?<![A-Za-z0-9._%+-])(?!git@)[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])'
{%- endmacro %}

{% macro pii_obfuscated_email_pattern() -%}
'(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*[ \t]*[\[({<][ \t]*(?:at|AT)[ \t]*[\])}>][ \t]*[A-Za-z0-9-]+(?:(?:[ \t]*[\[({<][ \t]*(?:dot|DOT)[ \t]*[\])}>][ \t]*|[ \t]+(?:dot|DOT)[ \t]+|\.)[A-Za-z0-9-]+)*?(?:[ \t]*[\[({<][ \t]*(?:dot|DOT)[ \t]*[\])}>][ \t]*|[ \t]+(?:dot|DOT)[ \t]+|\.)(?:com|org|net|io|dev|ai|co|me|info|eu|uk|se|no|dk|fi|de|nl|fr|es|it|pl|ch|at|us)(?![A-Za-z0-9])|(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*[ \t]+(?:at|AT)[ \t]+[A-Za-z0-9-]+(?:[ \t]+(?:dot|DOT)[ \t]+[A-Za-z0-9-]+)*?[ \t]+(?:dot|DOT)[ \t]+(?:com|org|net|io|dev|ai|co|me|info|eu|uk|se|no|dk|fi|de|nl|fr|es|it|pl|ch|at|us)(?![A-Za-z0-9])'
{%- endmacro %}

{% macro pii_iban_pattern() -%}
'(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])'
{%- endmacro %}

{% macro pii_phone_pattern() -%}
'(?<![0-9A-Za-z+])(?:\+|00)[1-9][0-9]{0,2}(?:[ .-]?(?:\(0\)|\([0-9]{1,4}\)|[0-9]{1,5})){2,6}(?![0-9])|(?<![0-9A-Za-z])(?:\([0-9]{3}\)[ ]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9])|(?<![0-9A-Za-z+.,/-])(?:\(0[0-9]{1,4}\)|0[0-9]{1,4})[ -]?[0-9]{2,4}(?:[ -]?[0-9]{2,4}){1,3}(?![0-9])'
{%- endmacro %}

{% macro pii_address_pattern() -%}
'(?<![0-9A-Za-z])[0-9]{1,5}[A-Z]?(?: [A-Z][a-z]+){1,3} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Square|Sq)(?![A-Za-z])\.?|(?<![A-Za-zÅÄÖåäöÆØæø])[A-ZÅÄÖÆØ][a-zåäöæøéü]+(?:gatan|vägen|gränd|torget|stigen|backen|allén|gata|väg|gade|vej|veien|gaten|straße|strasse|weg|platz) [0-9]{1,4}[A-Za-z]?(?![0-9A-Za-z])'
{%- endmacro %}

{% macro pii_signature_name_pattern() -%}
'((?:^|\n)[ \t]*(?:--|—|Best|Best regards|Kind regards|Warm regards|Regards|Cheers|Thanks|Thank you|Many thanks|Sincerely|Yours|All the best|Med vänliga hälsningar|Vänliga hälsningar|Mit freundlichen Grüßen|Cordialement)[ \t]*,?[ \t]*\n[ \t]*)[A-ZÅÄÖÆØ](?:[a-zåäöæøéü]+|[''’-][A-ZÅÄÖÆØ]?[a-zåäöæøéü]+)+(?: [A-ZÅÄÖÆØ]\.?)?(?: [A-ZÅÄÖÆØ](?:[a-zåäöæøéü]+|[''’-][A-ZÅÄÖÆØ]?[a-zåäöæøéü]+)+){1,2}(?=[ \t]*(?:\n|$))'
{%- endmacro %}

{#- The text with every kind of PII replaced by its placeholder. -#}
{% macro redact_pii(expr) -%}
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace({{ expr }}, {{ pii_private_key_pattern() }}, '[SECRET]', 'g'), {{ pii_token_pattern() }}, '[SECRET]', 'g'), {{ pii_quoted_secret_pattern() }}, '\1[SECRET]\2', 'gi'), {{ pii_bare_secret_pattern() }}, '\1\2[SECRET]', 'gi'), {{ pii_url_credentials_pattern() }}, '\1[SECRET]\2', 'g'), {{ pii_email_pattern() }}, '[EMAIL]', 'g'), {{ pii_obfuscated_email_pattern() }}, '[EMAIL]', 'g'), {{ pii_iban_pattern() }}, '[IBAN]', 'g'), {{ pii_phone_pattern() }}, '[PHONE]', 'g'), {{ pii_address_pattern() }}, '[ADDRESS]', 'g'), {{ pii_signature_name_pattern() }}, '\1[NAME]', 'g')
{%- endmacro %}

{#- True when the text still holds anything a PII pattern matches. -#}
{% macro contains_pii(expr) -%}
    (
        {{ expr }} ~ {{ pii_private_key_pattern() }}
        or {{ expr }} ~ {{ pii_token_pattern() }}
        or {{ expr }} ~* {{ pii_quoted_secret_pattern() }}
        or {{ expr }} ~* {{ pii_bare_secret_pattern() }}
        or {{ expr }} ~ {{ pii_url_credentials_pattern() }}
        or {{ expr }} ~ {{ pii_email_pattern() }}
        or {{ expr }} ~ {{ pii_obfuscated_email_pattern() }}
        or {{ expr }} ~ {{ pii_iban_pattern() }}
        or {{ expr }} ~ {{ pii_phone_pattern() }}
        or {{ expr }} ~ {{ pii_address_pattern() }}
        or {{ expr }} ~ {{ pii_signature_name_pattern() }}
    )
{%- endmacro %}

{#- How many placeholders a redacted text holds (a jump flags a rule matching too much).
-#}
{% macro count_redactions(expr) -%}
    regexp_count({{ expr }}, '\[(EMAIL|PHONE|ADDRESS|SECRET|IBAN|NAME)\]')
{%- endmacro %}
