"""Grammar-aligned sampling: draws from the model's distribution conditioned on the grammar,
P(y | y in L) ∝ P(y)·1[y in L], instead of the locally masked distribution.

- ``smc``: particles with AWRS weights and resampling (properly weighted; log-evidence).
- ``asap``: ASAp, a persistent prefix trie of future-grammaticality bounds (exact in the limit).
- ``cars``: rejection sampling over that trie; every accepted sample is exact.
- ``imh``: independent Metropolis-Hastings with masked proposals and weights Π Z_t.

docs/sampling.md states what each samples from, what it costs and when to use it.
"""

from structgen.aligned.api import (
    ALIGNED_SAMPLERS,
    SamplerName,
    SampleSet,
    TokenSamples,
    generate_aligned,
    sample,
    sample_tokens,
)
from structgen.aligned.asap import ASAp
from structgen.aligned.base import AlignedStats, Draw, LanguageModel, PathDecoder
from structgen.aligned.cars import CARS
from structgen.aligned.enumerate import ExactDistribution, enumerate_language
from structgen.aligned.imh import imh
from structgen.aligned.smc import ParticleRun, run_particles
from structgen.aligned.store import DEFAULT_STORE, TrieStore
from structgen.aligned.trie import PrefixTrie

__all__ = [
    "ALIGNED_SAMPLERS",
    "ASAp",
    "AlignedStats",
    "CARS",
    "DEFAULT_STORE",
    "Draw",
    "ExactDistribution",
    "LanguageModel",
    "ParticleRun",
    "PathDecoder",
    "PrefixTrie",
    "SampleSet",
    "SamplerName",
    "TokenSamples",
    "TrieStore",
    "enumerate_language",
    "generate_aligned",
    "imh",
    "run_particles",
    "sample",
    "sample_tokens",
]
