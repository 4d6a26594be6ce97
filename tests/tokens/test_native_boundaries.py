"""The C extension's boundary with Python: bad arguments raise typed errors, never crash.

Each case here crashed, read out of bounds or silently misread its input before the fix (found
under ASan/UBSan). The objects are built directly from ``structgen._native`` so that every
argument can be made wrong on purpose; the last tests check that the fixed paths still agree
with the pure-Python reference on valid inputs.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from structgen import _accel
from structgen.automata import earley  # registers the unpickling function of chart sets

nat = _accel.native()
pytestmark = pytest.mark.skipif(
    nat is None, reason=f"the C extension is not in use: {_accel.describe()}"
)


def _i32(values: list[int]) -> bytes:
    return np.array(values, dtype=np.int32).tobytes()


def _dfa_a(**kw):
    """The DFA of the one-byte language b'a' (NFA: 0 -a-> 1, 1 accepts)."""
    args = dict(
        n_nfa=2,
        e_off=_i32([0, 1, 1]),
        e_lo=b"a",
        e_hi=b"a",
        e_dst=_i32([1]),
        x_off=_i32([0, 0, 0]),
        x_dst=b"",
        accept=b"\x00\x01",
        all_live=False,
        start=0,
        max_states=100,
    )
    args.update(kw)
    return nat.Dfa(**args)


def _earley_a():
    """S -> 'a' (production 0; terminal 0 is the DFA of b'a')."""
    return nat.Earley(
        _i32([0]), _i32([0, 1]), _i32([~0]), 1, b"\x00", {}, [_dfa_a()]
    )


# ------------------------------------------------------------------------------------- Dfa


def test_dfa_rejects_bad_sizes_and_offsets() -> None:
    with pytest.raises(ValueError):
        _dfa_a(n_nfa=-1)
    with pytest.raises(ValueError):
        _dfa_a(n_nfa=2**31 - 1)
    # offsets that start below 0 made the rows read before the edge arrays
    with pytest.raises(ValueError):
        _dfa_a(e_off=_i32([-1, 0, 0]), e_dst=b"", e_lo=b"", e_hi=b"")
    with pytest.raises(ValueError):
        _dfa_a(x_off=_i32([-1, 0, 0]))


def test_dfa_buffer_arguments_are_type_checked() -> None:
    d = _dfa_a()
    # a bad first buffer left the second one uninitialised, then released: a crash
    with pytest.raises(TypeError):
        d.gather(object(), b"")
    with pytest.raises(TypeError):
        d.gather(_i32([1]), object())
    # an int64 array read as twice as many int32 states
    with pytest.raises(TypeError):
        d.gather(np.array([1], dtype=np.int64), b"aa")
    with pytest.raises(TypeError):
        d.has_out_many(np.array([1], dtype=np.int64))
    with pytest.raises(TypeError):
        d.structurally_covered(np.zeros(64, dtype=np.int32))
    with pytest.raises(IndexError):
        d.gather(_i32([99]), b"a")
    gathered = d.gather(np.array([d.initial], dtype=np.int32), np.array([97], np.uint8))
    out = np.frombuffer(gathered, np.int32)
    assert out.tolist() == [d.next(d.initial, 97)]


def test_dfa_index_arguments() -> None:
    d = _dfa_a()
    with pytest.raises(TypeError):
        d.next(object(), 1)  # the second argument used to be converted with an error pending
    with pytest.raises(TypeError):
        d.next(1, object())
    for bad in (-1, d.num_states, 2**40):
        with pytest.raises((IndexError, OverflowError)):
            d.row(bad)
        with pytest.raises((IndexError, OverflowError)):
            d.step(bad, b"a")
    with pytest.raises(ValueError):
        d.next(d.initial, 256)
    with pytest.raises(ValueError):
        d.intern([5])


def test_dfa_intern_tolerates_a_list_changed_by_index() -> None:
    d = _dfa_a()
    states: list[object] = []

    class Evil:
        def __index__(self) -> int:
            states.clear()  # frees the other items of the list being read
            return 1

    states.extend([Evil(), 0, 1, 0])
    sid = d.intern(states)
    assert d.subset(sid) == (0, 1)


# ------------------------------------------------------------------------------------ Trie


def test_trie_arguments() -> None:
    parent = _i32([0, 0, 1])
    t = nat.Trie(parent, b"\x00ab", _i32([0, 1, 2]), b"\x00\x01\x01")
    with pytest.raises(TypeError):
        t.path_bytes(object(), 1)
    with pytest.raises(TypeError):
        t.path_bytes(0, object())
    with pytest.raises(IndexError):
        t.path_bytes(0, 3)
    assert t.path_bytes(0, 2) == b"ab"
    with pytest.raises(TypeError):
        t.dfa_mask(object(), 0)
    with pytest.raises(IndexError):
        t.dfa_mask(_dfa_a(), 99)
    with pytest.raises(IndexError):
        t.cfg_walk(_dfa_a(), 1, np.array([7], dtype=np.int64))
    with pytest.raises(TypeError):
        t.cfg_walk(_dfa_a(), 1, np.array([0], dtype=np.int32))  # int64 node ids expected
    with pytest.raises(ValueError):
        nat.Trie(_i32([0, 0, 1]), b"\x00ab", _i32([0, 3, 2]), b"\x00\x01\x01")
    with pytest.raises(ValueError):
        nat.Trie(_i32([0, 2, 0]), b"\x00ab", _i32([0, 1, 2]), b"\x00\x01\x01")


# ------------------------------------------------------------------------------ Fragments


def test_fragment_numbers_must_fit_int32() -> None:
    # 2**32 + 1 was truncated to 1: a valid-looking edge to state 1
    with pytest.raises(OverflowError):
        nat.Fragment(2, [(0, 97, 97, 2**32 + 1)], [], [])
    with pytest.raises(OverflowError):
        nat.expand(2, [(0, 97, 97, 2**32 + 1)], [], [])
    with pytest.raises(TypeError):
        nat.Fragment(2, [(0, 97, 97)], [], [])
    with pytest.raises(ValueError):
        nat.Fragment(2, [(0, 97, 300, 1)], [], [])
    f = nat.Fragment(2, [(0, 97, 97, 1)], [], [])
    with pytest.raises(ValueError):
        nat.expand(2, [], [], [(f, 1)])
    e_off, e_lo, e_hi, e_dst, x_off, x_dst = nat.expand(3, [], [(0, 1)], [(f, 1)])
    assert np.frombuffer(e_off, np.int32).tolist() == [0, 0, 1, 1]
    assert (e_lo, e_hi, np.frombuffer(e_dst, np.int32).tolist()) == (b"a", b"a", [2])


def test_sequences_changed_by_index_do_not_crash() -> None:
    edges: list[object] = []

    class Evil:
        def __index__(self) -> int:
            edges.clear()
            return 0

    edges.extend([(0, 97, 97, Evil()), (0, 98, 98, 1), (1, 99, 99, 0)])
    f = nat.Fragment(2, edges, [], [])  # read from a snapshot of the list
    e_off, e_lo, *_ = nat.expand(2, [], [], [(f, 0)])
    assert e_lo == b"abc"

    # csr: the lists may shrink under it; it must notice, not write past its arrays
    inner: list[object] = []

    class Shrink:
        def __index__(self) -> int:
            inner.clear()  # frees the edge tuple being read
            return 97

    inner.extend([(Shrink(), 97, 0), (98, 98, 0), (99, 99, 0)])
    with pytest.raises(RuntimeError):
        nat.csr([inner], [[]])
    grown: list[object] = []

    class Grow:
        def __index__(self) -> int:
            grown.extend([0] * 50)
            return 0

    grown.append(Grow())
    with pytest.raises(RuntimeError):
        nat.csr([[]], [grown])
    assert nat.csr([[(97, 98, 0)]], [[0]])[1] == b"a"


# --------------------------------------------------------------------------------- Earley


def test_earley_set_build_validates() -> None:
    with pytest.raises(ValueError):
        nat.EarleySet.build(300, (), [], (), False)
    with pytest.raises(ValueError):
        nat.EarleySet.build(-2, (), [], (), False)
    with pytest.raises(ValueError):
        nat.EarleySet.build(None, ((0, -1, 0),), [], (), False)
    with pytest.raises(ValueError):
        nat.EarleySet.build(None, ((0, 2**31 - 1, 0),), [], (), False)
    with pytest.raises(ValueError):
        nat.EarleySet.build(None, ((0, 0, 0), (0, 0, 0)), [], (), False)
    with pytest.raises(ValueError):
        nat.EarleySet.build(None, (), [], ((0, -5, 0),), False)
    with pytest.raises(ValueError):
        nat.EarleySet.build(None, ((0, 0, 0),), [(1, 1)], (), False)
    s = nat.EarleySet.build(97, ((0, 1, 0), (1, 0, 0)), [(~0, 1)], ((0, 1, 0),), True)
    again = pickle.loads(pickle.dumps(s))
    assert (again.byte, again.items, again.waiting, again.scans, again.accepting) == (
        97, {(0, 1, 0), (1, 0, 0)}, {~0: [(1, 0, 0)]}, [(0, 1, 0)], True
    )


def test_earley_rejects_sets_of_other_grammars() -> None:
    e = _earley_a()
    first = e.initial()
    assert e.advance([first], 1, b"a")[0].accepting
    # an item whose production this grammar does not have: rhs_off was read out of bounds
    foreign = nat.EarleySet.build(-1, ((99, 0, 0),), [(~0, 0)], (), False)
    with pytest.raises(ValueError):
        e.complete_terminal([foreign], 1, 0, 0)
    # a dot past the end of the production
    foreign = nat.EarleySet.build(-1, ((0, 5, 0),), [(~0, 0)], (), False)
    with pytest.raises(ValueError):
        e.complete_terminal([foreign], 1, 0, 0)
    # scans of a terminal it does not have / of a DFA state not discovered / starting later
    for scan in ((5, 1, 0), (0, 10**6, 0), (0, 1, 3)):
        foreign = nat.EarleySet.build(-1, (), [], (scan,), False)
        with pytest.raises(ValueError):
            e.advance([foreign], 1, b"a")
        if scan[2] == 0:
            with pytest.raises(ValueError):
                e.single_live_byte(foreign)
    with pytest.raises(TypeError):
        e.single_live_byte(object())


def test_earley_chart_of_mixed_implementations() -> None:
    e = _earley_a()
    first = e.initial()
    later = nat.EarleySet.build(None, (), [], tuple(first.scans), False)
    # position 0 is not a native set: it used to be read as one
    for junk in (object(), "x", None):
        with pytest.raises(TypeError):
            e.advance([junk, later], 2, b"a")
        with pytest.raises(TypeError):
            e.complete_terminal([junk, later], 2, 0, 0)
    with pytest.raises(ValueError):
        e.advance([first], 2, b"a")
    with pytest.raises(TypeError):
        e.advance((first,), 1, b"a")
    with pytest.raises(TypeError):
        e.complete_terminal([first], 1, object(), 0)
    with pytest.raises(ValueError):
        e.complete_terminal([first], 1, 0, 1)
    with pytest.raises(TypeError):
        e.drop_failing([first], 1, object(), 0, b"", bytearray(4))


def test_earley_construction_validates() -> None:
    terms = [_dfa_a()]
    with pytest.raises(ValueError):
        nat.Earley(_i32([0]), _i32([0, 1]), _i32([~0]), -1, b"", {}, terms)
    # rhs offsets starting below 0: the right-hand sides were read before their array
    with pytest.raises(ValueError):
        nat.Earley(_i32([0, 0]), _i32([-1, 0, 1]), _i32([~0]), 1, b"\x00", {}, terms)
    with pytest.raises(ValueError):
        nat.Earley(_i32([0]), _i32([0, 1]), _i32([~1]), 1, b"\x00", {}, terms)
    with pytest.raises(TypeError):
        nat.Earley(_i32([0]), _i32([0, 1]), _i32([~0]), 1, b"\x00", {}, [object()])


def test_configs_key_validates_the_chart() -> None:
    c = nat.Configs(100)
    first = _earley_a().initial()
    assert c.key([first], 0) == 0
    # an origin after its own position: read past the end of the list
    late = nat.EarleySet.build(None, ((0, 1, 5),), [], (), False)
    with pytest.raises(ValueError):
        nat.Configs(100).key([late], 0)
    # an origin that holds something else than a native set
    later = nat.EarleySet.build(None, ((0, 1, 0),), [], ((0, 1, 0),), False)
    with pytest.raises(TypeError):
        nat.Configs(100).key([object(), later], 1)
    assert nat.Configs(100).key([first, later], 1) == 1


def test_module_registration_is_type_checked() -> None:
    with pytest.raises(TypeError):
        nat._set_errors(42)
    with pytest.raises(TypeError):
        nat._set_earley(42, print)
    with pytest.raises(TypeError):
        nat._set_earley(ValueError, 42)


# ------------------------------------------------------------------ native == pure reference


def test_native_and_pure_earley_sets_unpickle_alike() -> None:
    """The reference and the C set rebuild the same parts from one pickle (the validated path)."""
    parts = (97, ((0, 1, 0), (2, 0, 1)), [(~0, 1), (3, 0)], ((0, 1, 0),), True)
    native_set = nat.EarleySet.build(*parts)
    with _accel.pure_python():
        pure_set = earley._rebuild_set(*parts)
    for name in ("byte", "items", "waiting", "scans", "accepting"):
        assert getattr(native_set, name) == getattr(pure_set, name), name


def test_misaligned_buffers_are_refused() -> None:
    """int32/int64 arrays are read in place: a misaligned view (UB, flagged by UBSan) is refused."""
    d = _dfa_a()
    raw = memoryview(bytearray(9))[1:]  # 8 bytes at an odd address
    with pytest.raises(ValueError):
        d.gather(raw, b"\x00\x00")
    with pytest.raises(ValueError):
        d.has_out_many(raw)
    t = nat.Trie(_i32([0, 0, 1]), b"\x00ab", _i32([0, 1, 2]), b"\x00\x01\x01")
    with pytest.raises(ValueError):
        t.cfg_walk(d, d.initial, raw)
    e = _earley_a()
    with pytest.raises(ValueError):
        e.drop_failing([e.initial()], 1, t, 0, b"", memoryview(bytearray(5))[1:])
    assert np.frombuffer(d.has_out_many(memoryview(bytearray(9))[:8]), bool).tolist() == [
        False, False
    ]


def test_pickling_and_copying() -> None:
    """Chart sets round-trip through pickle and copy; the other C objects refuse (TypeError): their
    Python owners pickle what rebuilds them (NativeLazyByteDFA.__getstate__, ByteNFA's arrays)."""
    import copy

    e = _earley_a()
    s = e.advance([e.initial()], 1, b"a")[0]
    for twin in (copy.copy(s), copy.deepcopy(s), pickle.loads(pickle.dumps(s))):
        assert type(twin) is type(s) and twin is not s
        assert (twin.byte, twin.items, twin.waiting, twin.scans, twin.accepting) == (
            s.byte, s.items, s.waiting, s.scans, s.accepting
        )
    s.key = ("owner", 3)
    assert s.key == ("owner", 3)
    del s.key
    assert s.key is None
    trie = nat.Trie(_i32([0, 0, 1]), b"\x00ab", _i32([0, 1, 2]), b"\x00\x01\x01")
    frag = nat.Fragment(2, [(0, 97, 97, 1)], [], [])
    for obj in (_dfa_a(), trie, e, nat.Configs(3), frag):
        for fn in (pickle.dumps, copy.copy, copy.deepcopy):
            with pytest.raises(TypeError):
                fn(obj)


def test_earley_predicate_cycles_are_collected() -> None:
    """A predicate that (through its owner) references the parser forms a cycle the cyclic GC must
    be able to collect: the C parser takes part in garbage collection."""
    import gc
    import weakref

    class Owner:
        def check(self, span: bytes) -> bool:
            return True

    owner = Owner()
    e = nat.Earley(_i32([0, 1]), _i32([0, 1, 2]), _i32([1, ~0]), 2, b"\x00\x00",
                   {1: owner.check}, [_dfa_a()])
    assert e.advance([e.initial()], 1, b"a")[0].accepting  # S -> A, A -> 'a' (checked)
    owner.parser = e  # the cycle: parser -> predicate -> owner -> parser
    gone = weakref.ref(owner)
    del owner, e
    gc.collect()
    assert gone() is None
