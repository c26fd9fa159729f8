-- Per author and platform: how much they publish there, how long it is, and when they last did.
select
    author,
    platform,
    count(*)                              as documents,
    sum(word_count)                       as words,
    round(avg(word_count), 1)             as avg_words,
    min(published_at)                     as first_published_at,
    max(published_at)                     as latest_published_at
from {{ ref('documents') }}
group by author, platform
