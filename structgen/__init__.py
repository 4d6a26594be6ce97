"""structgen: language-model output that provably conforms to a JSON Schema, grammar or regex."""

from structgen.compiler import CompiledGrammar, CompileLimits, compile
from structgen.errors import (
    ConfigurationError,
    ConstraintViolation,
    DeadEnd,
    GrammarError,
    IncompatibleVocabulary,
    InternalError,
    InvalidGrammar,
    InvalidSchema,
    LimitExceeded,
    StructgenError,
    UnsupportedFeature,
    VocabularyError,
)
from structgen.grammar.ir import Grammar, KeywordStatus
from structgen.runtime.matcher import Matcher
from structgen.tokens.vocabulary import Vocabulary

__version__ = "0.1.0"

# torch and transformers are heavy: the decoding layer loads on first use.
_LAZY = {
    "generate": "structgen.integrations.generate",
    "generate_json": "structgen.integrations.generate",
    "sample": "structgen.aligned.api",
    "SampleSet": "structgen.aligned.api",
    "GenerationResult": "structgen.integrations.generate",
    "StructgenLogitsProcessor": "structgen.integrations.transformers",
    "AWRS": "structgen.sampling.awrs",
    "Masked": "structgen.sampling.masked",
    "SamplingParams": "structgen.sampling.warp",
    "NoAllowedToken": "structgen.sampling.warp",
    "load_default_model": "structgen.models",
    "load_model": "structgen.models",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'structgen' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AWRS",
    "CompileLimits",
    "CompiledGrammar",
    "ConfigurationError",
    "ConstraintViolation",
    "DeadEnd",
    "GenerationResult",
    "Grammar",
    "GrammarError",
    "IncompatibleVocabulary",
    "InternalError",
    "InvalidGrammar",
    "InvalidSchema",
    "KeywordStatus",
    "LimitExceeded",
    "Masked",
    "Matcher",
    "NoAllowedToken",
    "SampleSet",
    "SamplingParams",
    "StructgenError",
    "StructgenLogitsProcessor",
    "UnsupportedFeature",
    "Vocabulary",
    "VocabularyError",
    "__version__",
    "compile",
    "generate",
    "generate_json",
    "load_default_model",
    "load_model",
    "sample",
]
