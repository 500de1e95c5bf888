"""Forged passes of assertion tests: wrong programs that try to make HumanEval `check(candidate)` and MBPP
`test_list` tests pass without computing the answer. Each must be `incorrect` against the tests as call
cases (decided on the host), as a script (decided in the harness, which holds no candidate code), and
as MBPP rows; the honest program passes all three."""

from __future__ import annotations

import json

import pytest

from distillery.operators.verifiers.code import CodeVerifier
from distillery.schemas.verifier_config import CodeVerifierConfig

AS_CALLS = json.dumps({
    "test": "METADATA = {'author': 'x'}\n\n\ndef check(candidate):\n    print\n    assert candidate(2, 3) == 5\n"
            "    assert candidate(0, 0) == 0, 'zero'\n    assert True, 'always'\n    assert candidate(10, -3) == 7\n",
    "entry_point": "add",
})
AS_SCRIPT = json.dumps({
    "test": "def check(candidate):\n    for a, b in [(2, 3), (0, 0), (10, -3)]:\n"
            "        assert candidate(a, b) == a + b\n",
    "entry_point": "add",
})
MBPP = json.dumps({"test_list": ["assert add(2, 3) == 5", "assert add(0, 0) == 0", "assert add(10, -3) == 7"]})
GOLDS = {"calls": AS_CALLS, "script": AS_SCRIPT, "mbpp": MBPP}

# Writes `line` to every file descriptor the program can reach, from the main thread or another.
_SPRAY = (
    "import os\n"
    "def spray(line):\n"
    "    for fd in range(0, 1024):\n"
    "        try:\n"
    "            os.write(fd, line)\n"
    "        except OSError:\n"
    "            pass\n"
)
# Every 32-hex-digit token the program can find: objects the garbage collector tracks, the frames
# above it, and its own raw memory through ctypes.
_NONCE_HUNT = _SPRAY + (
    "import gc, re, sys, ctypes\n"
    "TOKEN = re.compile(rb'[0-9a-f]{32}')\n"
    "def tokens():\n"
    "    found = set()\n"
    "    for obj in gc.get_objects():\n"
    "        for value in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()):\n"
    "            if isinstance(value, (str, bytes)) and len(value) < 100000:\n"
    "                data = value.encode('latin-1', 'ignore') if isinstance(value, str) else value\n"
    "                found.update(TOKEN.findall(data))\n"
    "    frame = sys._getframe()\n"
    "    while frame is not None:\n"
    "        for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):\n"
    "            if isinstance(value, str):\n"
    "                found.update(TOKEN.findall(value.encode('latin-1', 'ignore')))\n"
    "        frame = frame.f_back\n"
    "    for line in open('/proc/self/maps'):\n"
    "        span, perms = line.split()[:2]\n"
    "        if 'r' in perms and ('[heap]' in line or len(line.split()) == 5):\n"
    "            start, end = (int(x, 16) for x in span.split('-'))\n"
    "            if end - start < 64 * 2**20:\n"
    "                try:\n"
    "                    found.update(TOKEN.findall(ctypes.string_at(start, end - start)))\n"
    "                except Exception:\n"
    "                    pass\n"
    "    return found\n"
    "for token in tokens():\n"
    "    for event in (b'{\"event\": \"load\", \"ok\": true}',\n"
    "                  b'{\"event\": \"case\", \"i\": 0, \"status\": \"ok\"}', b'{\"event\": \"done\"}'):\n"
    "        spray(token + b' ' + event + b'\\n')\n"
)
# The test's expected values, wherever the program can see text: in the test source through frames
# and the garbage collector, or in its raw memory.
_SOURCE_HUNT = (
    "import gc, re, sys\n"
    "def texts():\n"
    "    frame = sys._getframe()\n"
    "    while frame is not None:\n"
    "        yield from (str(v) for v in list(frame.f_globals.values()) + list(frame.f_locals.values()))\n"
    "        frame = frame.f_back\n"
    "    yield from (str(o) for o in gc.get_objects() if isinstance(o, dict))\n"
    "    with open('/proc/self/mem', 'rb', buffering=0) as memory:\n"
    "        for line in open('/proc/self/maps'):\n"
    "            span, perms = line.split()[:2]\n"
    "            start, end = (int(x, 16) for x in span.split('-'))\n"
    "            if 'r' in perms and end - start < 16 * 2**20:\n"
    "                try:\n"
    "                    memory.seek(start)\n"
    "                    yield memory.read(end - start).decode('latin-1')\n"
    "                except (OSError, ValueError, OverflowError):\n"
    "                    pass\n"
    "def add(a, b):\n"
    "    pattern = re.compile(r'(?:candidate|add)\\(%d, %d\\) == (-?\\d+)' % (a, b))\n"
    "    for text in texts():\n"
    "        found = pattern.search(text)\n"
    "        if found:\n"
    "            return int(found.group(1))\n"
    "    return -1\n"
)

FORGES = {
    "equals-everything": "class A:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
                         "def add(a, b):\n    return A()",
    "int-subclass": "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
                    "def add(a, b):\n    return I(0)",
    "exit-on-load": "import sys\nsys.exit(0)",
    "os-exit-on-load": "import os\nos._exit(0)",
    "exit-in-call": "def add(a, b):\n    raise SystemExit(0)",
    "os-exit-in-call": "import os\ndef add(a, b):\n    os._exit(0)",
    "fake-result-lines": _SPRAY + "spray(b'{\"event\": \"case\", \"i\": 0, \"status\": \"ok\"}\\n')\n"
                         "spray(b'{\"event\": \"done\"}\\n')\n"
                         "print('All tests passed')\ndef add(a, b):\n    return 0",
    "patched-builtins": "import builtins\n"
                        "real_compile = builtins.compile\n"
                        "builtins.compile = lambda *a, **k: real_compile('pass', 'x', 'exec')\n"
                        "builtins.exec = lambda *a, **k: None\n"
                        "builtins.AssertionError = type('Quiet', (Exception,), {})\n"
                        "builtins.abs = lambda x: 0\n"
                        "def add(a, b):\n    return 0",
    "patched-harness": "import __main__\n"
                       "for name in dir(__main__):\n"
                       "    if callable(getattr(__main__, name)) and not name.startswith('__'):\n"
                       "        setattr(__main__, name, lambda *a, **k: None)\n"
                       "def add(a, b):\n    return 0",
    "thread": _SPRAY + "import threading, time, os\n"
                       "def later():\n"
                       "    for _ in range(50):\n"
                       "        spray(b'{\"event\": \"done\"}\\n')\n"
                       "        time.sleep(0.01)\n"
                       "    os._exit(0)\n"
                       "threading.Thread(target=later, daemon=True).start()\n"
                       "def add(a, b):\n    time.sleep(5)\n    return 0",
    "nonce-hunt": _NONCE_HUNT + "def add(a, b):\n    return 0",
    "source-hunt": _SOURCE_HUNT,
}


@pytest.fixture(scope="module")
def verifier() -> CodeVerifier:
    # Generous limits: other jobs share this machine's two cores.
    return CodeVerifier(CodeVerifierConfig(test_timeout_s=10, timeout_s=30))


@pytest.mark.parametrize("gold", GOLDS, ids=list(GOLDS))
def test_the_honest_program_passes(verifier: CodeVerifier, gold: str) -> None:
    tests = verifier.prepare_gold(None, GOLDS[gold])
    assert tests.mode == {"calls": "call", "script": "script", "mbpp": "call"}[gold]
    label, _, detail = verifier.check(tests, "```python\ndef add(a, b):\n    return a + b\n```")
    assert label == "correct", detail


@pytest.mark.parametrize("gold", GOLDS, ids=list(GOLDS))
@pytest.mark.parametrize("forge", FORGES, ids=list(FORGES))
def test_a_forged_pass_fails(verifier: CodeVerifier, forge: str, gold: str) -> None:
    label, _, detail = verifier.check(verifier.prepare_gold(None, GOLDS[gold]), f"```python\n{FORGES[forge]}\n```")
    assert label == "incorrect", detail


def test_arguments_are_copies(verifier: CodeVerifier) -> None:
    # The test compares against the list it passed; a program that empties it must not make [] match.
    tests = json.dumps({"test": "def check(candidate):\n    xs = [3, 1, 2]\n    assert candidate(xs) == sorted(xs)\n",
                        "entry_point": "sort"})
    gold = verifier.prepare_gold(None, tests)
    assert gold.mode == "script"
    assert verifier.check(gold, "```python\ndef sort(xs):\n    xs.clear()\n    return []\n```")[0] == "incorrect"
    assert verifier.check(gold, "```python\ndef sort(xs):\n    return sorted(xs)\n```")[0] == "correct"


def test_script_tests_get_plain_copies_of_results(verifier: CodeVerifier) -> None:
    # A test that catches every Exception still fails a program that broke the protocol or died.
    tests = json.dumps({"test": "def check(candidate):\n    try:\n        assert candidate(1) == 2\n"
                                "    except Exception:\n        pass\n", "entry_point": "f"})
    gold = verifier.prepare_gold(None, tests)
    for program in ("import os\ndef f(x):\n    os._exit(0)", "class A:\n    pass\ndef f(x):\n    return A()"):
        assert verifier.check(gold, f"```python\n{program}\n```")[0] == "incorrect", program
    # A builtin exception the program raises reaches the test as that exception.
    raises = json.dumps({"test": "def check(candidate):\n    try:\n        candidate(-1)\n    except ValueError:\n"
                                 "        return\n    assert False\n", "entry_point": "f"})
    gold = verifier.prepare_gold(None, raises)
    assert verifier.check(gold, "```python\ndef f(x):\n    raise ValueError('negative')\n```")[0] == "correct"
    assert verifier.check(gold, "```python\ndef f(x):\n    return 0\n```")[0] == "incorrect"


HUMANEVAL_SHAPES = [
    # (test, entry point, right, wrong): the forms HumanEval's tests take.
    ("def check(candidate):\n    assert abs(candidate(1.33) - 0.33) < 1e-06\n", "frac",
     "def frac(x):\n    return x - int(x)", "def frac(x):\n    return 0.3"),
    ("def check(candidate):\n    assert candidate([1, 2]) is True\n    assert not candidate([2, 1])\n"
     "    assert candidate([1, 3])\n", "ordered",
     "def ordered(xs):\n    return xs == sorted(xs)", "def ordered(xs):\n    return 1"),
    ("def check(candidate):\n    assert candidate('a b b') == {'a': 1, 'b': 2}\n"
     "    assert candidate('') == {}\n", "histogram",
     "def histogram(s):\n    d = {}\n    for w in s.split():\n        d[w] = d.get(w, 0) + 1\n    return d",
     "def histogram(s):\n    return {'a': 1, 'b': 2}"),
    ("def check(candidate):\n    assert candidate([]) == (0, 1)\n    assert candidate([2, 3]) == (5, 6)\n",
     "sum_product",
     "import math\ndef sum_product(xs):\n    return sum(xs), math.prod(xs)",
     "def sum_product(xs):\n    return [sum(xs), 1]"),
    ("def check(candidate):\n    assert tuple(candidate([3, 1])) == tuple(sort_list([3, 1]))\n"
     "    assert tuple(candidate([3, 1])) == tuple([1, 3])\n", "sort_list",
     "def sort_list(xs):\n    return sorted(xs)", "def sort_list(xs):\n    return xs"),
    ("import math\n\n\ndef check(candidate):\n    import random\n    rng = random.Random(42)\n"
     "    for _ in range(20):\n        xs = [rng.randint(-5, 5) for _ in range(3)]\n"
     "        assert math.fabs(poly(xs, candidate(xs))) < 1e-4 or xs[1] == 0\n", "root",
     "def poly(xs, x):\n    return xs[0] + xs[1] * x\ndef root(xs):\n    return -xs[0] / xs[1] if xs[1] else 0.0",
     "def poly(xs, x):\n    return xs[0] + xs[1] * x\ndef root(xs):\n    return 0.0"),
]


@pytest.mark.parametrize(("test", "entry", "right", "wrong"), HUMANEVAL_SHAPES,
                         ids=["abs-tolerance", "truthiness", "dict", "tuple", "reference-call", "helper-and-loop"])
def test_humaneval_shapes(verifier: CodeVerifier, test: str, entry: str, right: str, wrong: str) -> None:
    gold = verifier.prepare_gold(None, json.dumps({"test": test, "entry_point": entry}))
    label, _, detail = verifier.check(gold, f"```python\n{right}\n```")
    assert label == "correct", detail
    label, _, detail = verifier.check(gold, f"```python\n{wrong}\n```")
    assert label == "incorrect", detail
