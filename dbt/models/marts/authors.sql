-- One row per author of at least one mart document.
select
    author,
    count(*)                                        as documents,
    sum(word_count)                                 as words,
    min(published_at)                               as first_published_at,
    max(published_at)                               as last_published_at,
    array_agg(distinct platform order by platform)  as platforms,
    max(updated_at)                                 as updated_at
from {{ ref('documents') }}
group by author
