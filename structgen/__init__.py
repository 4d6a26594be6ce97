"""structgen: language-model output that provably conforms to a JSON Schema, grammar or regex."""

from structgen.compiler import CompiledGrammar, CompileLimits, compile
from structgen.errors import (
    ConfigurationError,
    ConstraintViolation,
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

__all__ = [
    "CompileLimits",
    "CompiledGrammar",
    "ConfigurationError",
    "ConstraintViolation",
    "Grammar",
    "GrammarError",
    "IncompatibleVocabulary",
    "InternalError",
    "InvalidGrammar",
    "InvalidSchema",
    "KeywordStatus",
    "LimitExceeded",
    "Matcher",
    "StructgenError",
    "UnsupportedFeature",
    "Vocabulary",
    "VocabularyError",
    "__version__",
    "compile",
]
