"""The `twin_crawl` Params a person types in the trigger form, and their check inside the task.

One list field per platform (the form shows one URL per line) instead of one JSON object. The same
JSON schema drives the form (which refuses a bad value before the run exists), the REST API (which
answers 400) and the task, which checks again what reached it by any other way (`airflow dags
test -c`, `dag.test(run_conf=...)`, an older `links` object) and fails with every problem named.

Light to import: the DAG file reads the schemas while the DAG processor parses it.
"""

from __future__ import annotations

from typing import Any

from twin.domain.documents import Platform

# The form's fields, in form order: the domain's platforms, named by their values.
PLATFORMS: tuple[str, ...] = tuple(p.value for p in Platform)
MAX_LINKS = 200
# An empty line is allowed (the form turns every line of the text box into an item); the task
# drops it. A LinkedIn data export uploaded to the upload folder is named upload://<file name>.
HTTP_URL = r"^(https?://[^\s/?#@]+[^\s]*)?$"
LINKEDIN_URL = r"^(https?://[^\s/?#@]+[^\s]*|upload://[^\s/]+)?$"

PLATFORM_HELP: dict[Platform, tuple[str, str]] = {
    Platform.LINKEDIN: (
        "LinkedIn",
        "the data export uploaded to the upload folder (upload://<file name>); a profile URL is "
        "recorded as skipped, since public pages need a signed-in browser",
    ),
    Platform.MEDIUM: (
        "Medium",
        "a profile (https://medium.com/@user), its feed, or single stories",
    ),
    Platform.SUBSTACK: ("Substack", "a publication (https://name.substack.com) or single posts"),
    Platform.GITHUB: ("GitHub", "repositories (https://github.com/user/repo), cloned shallow"),
    Platform.BLOG: ("Blog", "a personal site (its sitemap is read) or single pages"),
}


def param_schemas() -> dict[str, dict[str, Any]]:
    """Each Param's default and JSON schema (with title and description), in form order."""
    schemas: dict[str, dict[str, Any]] = {
        "author": {
            # null: left empty, the run crawls for the platform's author (TWIN_AUTHOR)
            "default": None,
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": 200,
            "pattern": r"\S",
            "title": "Author",
            "description": "Whose writing this is; documents are stored under this name. "
            "Empty: the platform's author (the TWIN_AUTHOR setting).",
        }
    }
    for platform in PLATFORMS:
        name, what = PLATFORM_HELP[Platform(platform)]
        schemas[platform] = {
            "default": [],
            # null: the form sends null for a box left empty; it is optional like an empty list.
            "type": ["array", "null"],
            "maxItems": MAX_LINKS,
            "items": {
                "type": "string",
                "pattern": LINKEDIN_URL if platform == "linkedin" else HTTP_URL,
                "maxLength": 2048,
            },
            "title": f"{name} links",
            "description": (
                f"One URL per line: {what}. Only http(s) URLs. Leave every list empty to crawl "
                "the links already stored for the author."
            ),
        }
    return schemas


def links_from_params(params: dict[str, Any]) -> dict[str, list[str]]:
    """The run's links per platform, checked against the Params' schema.

    Raises ValueError naming each bad Param and item, so a run started with values the form
    would refuse fails before anything is fetched.
    """
    import jsonschema

    schemas = param_schemas()
    legacy = params.get("links") or {}
    values = [(name, name, params.get(name)) for name in schemas]
    problems: list[str] = []
    if isinstance(legacy, dict) and all(p in PLATFORMS for p in legacy):
        values += [(f"links.{p}", p, urls) for p, urls in legacy.items()]
    else:
        problems.append(f"links: must map platforms ({', '.join(PLATFORMS)}) to URL lists")
        legacy = {}
    for label, name, value in values:
        if value is None:
            continue
        schema = schemas[name]
        body = {k: v for k, v in schema.items() if k not in ("default", "title", "description")}
        validator = jsonschema.Draft202012Validator(body)
        for error in sorted(validator.iter_errors(value), key=str):
            where = "".join(f"[{p}]" for p in error.absolute_path)
            item = error.instance if isinstance(error.instance, str | int | float) else None
            shown = f" ({item!r})" if item is not None else ""
            message = error.message
            if error.validator == "pattern":
                message = "not an http(s) URL" + (
                    " or upload://<file>" if name == "linkedin" else ""
                )
            problems.append(f"{label}{where}{shown}: {message}")
    if problems:
        raise ValueError("invalid twin_crawl params:\n  " + "\n  ".join(problems))
    links: dict[str, list[str]] = {}
    for platform in PLATFORMS:
        urls = [*(params.get(platform) or []), *(legacy.get(platform) or [])]
        urls = [u.strip() for u in urls if isinstance(u, str) and u.strip()]
        if urls:
            links[platform] = list(dict.fromkeys(urls))
    return links


def plan_crawl(params: dict[str, Any]) -> list[dict]:
    """Check the run's Params, then plan one source per link (see `twin.crawl.tasks`). No
    author (None) is the platform's author, `Settings.author`."""
    from twin.crawl.tasks import plan_sources

    author = params.get("author")
    if author is None:
        from twin.settings import load_settings

        author = load_settings().author
    if not isinstance(author, str) or not author.strip():
        raise ValueError(f"invalid twin_crawl params:\n  author ({author!r}): must be a name")
    links = links_from_params(params)
    return plan_sources({"author": author.strip(), "links": links})
