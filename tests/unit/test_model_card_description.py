"""A model card longer than MLflow's description column still registers the version."""

from twin.domain.models import MODEL_CARD_ARTIFACT
from twin.training.registry import MAX_DESCRIPTION_CHARS, version_description


def test_a_long_card_is_cut_at_a_section_with_a_pointer_to_the_whole_card() -> None:
    card = "# twin-llm\n\nintro\n\n" + "".join(
        f"## Section {i}\n\n" + "figure | value\n" * 60 for i in range(20)
    )
    assert len(card) > MAX_DESCRIPTION_CHARS
    described = version_description(card)
    assert len(described) <= MAX_DESCRIPTION_CHARS
    assert MODEL_CARD_ARTIFACT in described
    body = described.split("\n\n(cut here")[0]
    assert card.startswith(body) and not body.rstrip().endswith("## Section")


def test_a_short_card_is_the_description_as_it_is() -> None:
    assert version_description("# twin-llm\n\nshort") == "# twin-llm\n\nshort"
