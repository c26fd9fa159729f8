-- One row per raw document, typed and renamed; no business logic beyond that.
select
    document_id,
    url,
    lower(btrim(platform))                      as platform,
    lower(btrim(kind))                          as document_kind,
    btrim(author)                               as author,
    title,
    coalesce(content, '')                       as body_markdown,
    published_at,
    content_hash,
    word_count                                  as raw_word_count,
    source_url,
    first_seen                                  as first_seen_at,
    last_changed                                as last_changed_at,
    fetched_at,
    deleted_at,
    deleted_at is not null                      as is_deleted,
    version                                     as document_version,
    coalesce(payload -> 'files', '[]'::jsonb)   as repository_files,
    coalesce(payload -> 'metadata', '{}'::jsonb) as metadata,
    loaded_at
from {{ source('raw', 'documents') }}
