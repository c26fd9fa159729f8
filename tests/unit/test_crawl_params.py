"""The `twin_crawl` Params: one field per platform of the domain, every bad value named."""

import pytest

from twin.crawl.params import PLATFORMS, links_from_params, param_schemas
from twin.domain.documents import Platform


def test_the_form_has_the_author_then_one_list_per_domain_platform() -> None:
    schemas = param_schemas()
    assert list(schemas) == ["author", *(p.value for p in Platform)]
    assert PLATFORMS == ("linkedin", "medium", "substack", "github", "blog")
    # left empty, the run crawls for the platform's author (the TWIN_AUTHOR setting)
    assert schemas["author"]["default"] is None and "null" in schemas["author"]["type"]
    assert all(schemas[p]["default"] == [] and "array" in schemas[p]["type"] for p in PLATFORMS)


def test_links_are_gathered_per_platform_and_deduplicated() -> None:
    links = links_from_params(
        {
            "author": "Ada",
            "blog": ["https://a.example/sitemap.xml", "https://a.example/sitemap.xml"],
            "linkedin": ["upload://export.zip"],
            "links": {"blog": ["https://b.example/"], "github": ["https://github.com/a/b"]},
        }
    )
    assert links == {
        "linkedin": ["upload://export.zip"],
        "github": ["https://github.com/a/b"],
        "blog": ["https://a.example/sitemap.xml", "https://b.example/"],
    }


def test_every_bad_value_is_named_with_its_param_and_item() -> None:
    with pytest.raises(ValueError) as err:
        links_from_params(
            {
                "medium": ["https://medium.com/@ada", "ftp://x.example/feed"],
                "github": "https://github.com/a/b",
                "blog": ["upload://export.zip"],
                "links": {"myspace": ["https://myspace.com/ada"]},
            }
        )
    message = str(err.value)
    assert "medium[1] ('ftp://x.example/feed'): not an http(s) URL" in message
    assert "github" in message and "is not of type 'array'" in message
    assert "blog[0] ('upload://export.zip'): not an http(s) URL" in message
    assert "links: must map platforms (linkedin, medium, substack, github, blog)" in message
    assert "https://medium.com/@ada" not in message
