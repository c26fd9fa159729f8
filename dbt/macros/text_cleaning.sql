{#-
  Text normalisation for crawled markdown, as SQL expressions over a text column.

  Postgres has no Unicode NFC, so normalisation here is about characters that change what a
  reader or a hash sees without changing the words: zero-width and soft-hyphen characters, exotic
  spaces, Windows/Mac newlines, trailing blanks and runs of blank lines. Patterns live in macro
  bodies (not Jinja strings) so their backslashes reach Postgres untouched.
-#}

{#- Invisible characters, odd spaces and newline styles, trailing blanks, runs of blank lines.
    Spaces inside a line are kept: they are code indentation and alignment. -#}
{% macro normalise_whitespace(expr) -%}
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
        coalesce({{ expr }}, ''),
        '[\u200B\u200C\u200D\u2060\uFEFF\u00AD]', '', 'g'),
        '[\u00A0\u2000-\u200A\u202F\u205F\u3000]', ' ', 'g'),
        '\r\n?|[\u2028\u2029\u0085]', E'\n', 'g'),
        '[\u0001-\u0008\u000B\u000C\u000E-\u001F\u007F]', '', 'g'),
        '[ \t]+(\n|$)', '\1', 'g'),
        '\n{3,}', E'\n\n', 'g')
{%- endmacro %}

{#- Markdown images, HTML comments, script/style blocks, presentational tags and common entities:
    what an HTML-to-markdown conversion leaves behind. Link text is kept, images are dropped. -#}
{% macro strip_markup(expr) -%}
    replace(replace(replace(replace(replace(replace(replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
    regexp_replace(
        {{ expr }},
        '!\[[^]\n]*\]\([^)\n]*\)|!\[[^]\n]*\]\[[^]\n]*\]', '', 'g'),
        '<!--.*?-->', '', 'g'),
        '<(script|style|noscript|svg|iframe)[ >].*?</\1>', '', 'gi'),
        '</?(div|span|p|br|hr|img|a|figure|figcaption|picture|source|section|article|header|footer|nav|aside|main|button|form|input|label|b|i|em|strong|u|small|sup|sub|font|center|table|thead|tbody|tr|td|th|ul|ol|li|h[1-6]|blockquote|pre|code|video|audio)([ \t\n][^>]*)?/?>', '', 'gi'),
        '&nbsp;', ' '), '&quot;', '"'), '&#39;', ''''), '&apos;', ''''),
        '&lt;', '<'), '&gt;', '>'), '&amp;', '&')
{%- endmacro %}

{#- Whole lines of platform chrome: newsletter prompts, share/follow buttons, cookie banners,
    "originally published" footers, reading-time badges. Each entry matches the text of one line
    (after markdown decoration such as `>`, `*`, `#`, `-`), case-insensitively; lines are capped in
    length so an ordinary paragraph that merely mentions subscribing is never removed. -#}
{% macro boilerplate_line_patterns() -%}
{%- set patterns -%}
subscribe(\M[^\n]{0,80})?
(click here to |sign up to |sign up for |join )(subscribe|my newsletter|the newsletter|our newsletter)[^\n]{0,80}
(subscribe|sign up) (now|for free|here|today)[^\n]{0,80}
follow (me|us)(\M[^\n]{0,80})?
share (this|on)(\M[^\n]{0,80})?
thanks for reading\M[^\n]{0,160}
originally published (at|on|in)\M[^\n]{0,200}
[^\n]{0,120}(we use|this (web)?site uses|site uses) cookies\M[^\n]{0,240}
(accept|reject|manage|allow)( all)? cookies[^\n]{0,60}
cookie (policy|settings|preferences|consent)[^\n]{0,60}
(open|get|read [^\n]{0,30}) in (the )?app
[0-9]{1,3} min read
(leave a comment|like this post|restack|give it a clap|clap if [^\n]{0,80})
{%- endset -%}
{%- do return(patterns.strip().split('\n')) -%}
{%- endmacro %}

{#- Words one of which every line pattern above contains as it stands (case aside): a text or line
    with none of them holds no boilerplate line. Testing for them costs about a hundredth of the line
    patterns' scan, which most texts and lines are spared. A new pattern needs its word here. -#}
{% macro boilerplate_keywords() -%}
subscribe|newsletter|sign up|follow (me|us)|share (this|on)|thanks for reading|originally published|cookie|in (the )?app|min read|leave a comment|like this post|restack|clap
{%- endmacro %}

{#- True when the line `expr` (no newline in it) is boilerplate as a whole. -#}
{% macro is_boilerplate_line(expr) -%}
    ({{ expr }} ~* '{{ boilerplate_keywords() }}'
     and {{ expr }} ~* '^[ \t>*_#|-]*(?:(?:{{ boilerplate_line_patterns() | join(')|(?:') }}))[ \t.!:*_]*$')
{%- endmacro %}

{#- The text without its boilerplate lines, each removed with the newline that ends it (a last line
    that is boilerplate leaves the newline before it, as an empty last line). Lines are tested one
    by one, each once: the patterns run only on the few lines that hold a keyword, not from every
    position of the whole text. `expr` is read up to three times: pass a column, not an
    expression. -#}
{% macro remove_boilerplate(expr) -%}
    case when {{ expr }} ~* '{{ boilerplate_keywords() }}' then (
        select string_agg(
            case when boilerplate_line.line_no = cardinality(boilerplate_text.lines)
                      and {{ is_boilerplate_line('boilerplate_line.line_text') }} then ''
                 else boilerplate_line.line_text end,
            E'\n' order by boilerplate_line.line_no)
        from (select string_to_array({{ expr }}, E'\n') as lines) as boilerplate_text,
             unnest(boilerplate_text.lines) with ordinality as boilerplate_line(line_text, line_no)
        where boilerplate_line.line_no = cardinality(boilerplate_text.lines)
           or not {{ is_boilerplate_line('boilerplate_line.line_text') }}
    )
    else {{ expr }} end
{%- endmacro %}

{#- What a reader sees as the document: `body_markdown`, and for a repository its README followed by
    its documentation files (markdown / reStructuredText, in path order), each under a `### path`
    heading so the chunker keeps file boundaries. Source code stays out of the clean text (it is not
    the author's voice): marts.document_files carries it to the feature pipeline. -#}
{% macro document_source_text(kind_col, body_col, files_col) -%}
    case
        when {{ kind_col }} = 'repository' then concat_ws(
            E'\n\n',
            nullif({{ body_col }}, ''),
            (
                select string_agg(
                    '### ' || (f.value ->> 'path') || E'\n\n' || (f.value ->> 'text'),
                    E'\n\n' order by f.value ->> 'path'
                )
                from jsonb_array_elements(
                    case when jsonb_typeof({{ files_col }}) = 'array'
                         then {{ files_col }} else '[]'::jsonb end
                ) as f(value)
                where f.value ->> 'language' in ('markdown', 'restructuredtext')
            )
        )
        else coalesce({{ body_col }}, '')
    end
{%- endmacro %}

{#- md5 of the lower-cased text with punctuation removed and whitespace collapsed: two documents
    with the same words in the same order hash the same, whatever their formatting. -#}
{% macro normalised_hash(expr) -%}
    md5(btrim(regexp_replace(regexp_replace(lower({{ expr }}), '[[:punct:]]+', '', 'g'),
        '\s+', ' ', 'g')))
{%- endmacro %}

{#- Whitespace-separated words, 0 for an empty text. -#}
{% macro word_count(expr) -%}
    coalesce(array_length(regexp_split_to_array(nullif(btrim({{ expr }}, E' \t\n'), ''), '\s+'), 1), 0)
{%- endmacro %}
