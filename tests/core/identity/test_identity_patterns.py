"""Resource patterns and actions: exact segment semantics, checked against a reference."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from tsuba.core.errors import InputError
from tsuba.core.identity.patterns import (
    MAX_WILDCARDS,
    action_matches,
    compile_pattern,
    validate_action,
    validate_principal_name,
    validate_resource,
    validate_role_name,
)

# Small alphabets so that random patterns and resources actually meet.
segment = st.text(alphabet="ab.-", min_size=1, max_size=4).filter(lambda s: s not in (".", ".."))
resource = st.lists(segment, min_size=1, max_size=6).map("/".join)
star_segment = st.one_of(
    segment,
    st.just("*"),
    st.builds(
        lambda a, b: f"{a}*{b}", st.text(alphabet="ab", max_size=2), st.text("ab", max_size=2)
    ),
    st.builds(
        lambda a, b: f"*{a}*{b}",
        st.text(alphabet="ab", min_size=1, max_size=2),
        st.text("ab", max_size=2),
    ),
)


@st.composite
def pattern(draw: st.DrawFn) -> str:
    segs = draw(st.lists(st.one_of(star_segment, st.just("**")), min_size=1, max_size=6))
    out: list[str] = []
    for seg in segs:
        if seg == "**" and (out[-1:] == ["**"] or out.count("**") >= 2):
            continue
        out.append(seg)
    text = "/".join(out)
    assume(text.count("*") - text.count("**") <= MAX_WILDCARDS)
    return text


def reference_match(pat: list[str], res: list[str]) -> bool:
    """Straightforward recursive definition of the documented semantics."""
    if not pat:
        return not res
    if pat[0] == "**":
        return any(reference_match(pat[1:], res[k:]) for k in range(len(res) + 1))
    return bool(res) and fnmatchcase(res[0], pat[0]) and reference_match(pat[1:], res[1:])


@given(pattern(), resource)
def test_compiled_matcher_agrees_with_reference(pat: str, res: str) -> None:
    assert compile_pattern(pat).matches(res) == reference_match(pat.split("/"), res.split("/"))


@given(resource, resource)
def test_exact_pattern_matches_only_itself(pat: str, res: str) -> None:
    compiled = compile_pattern(pat)
    assert compiled.exact
    assert compiled.matches(pat)
    assert compiled.matches(res) == (res == pat)


@given(st.lists(st.one_of(segment, st.just("*")), min_size=1, max_size=5), resource)
def test_single_star_never_crosses_a_segment(segs: list[str], res: str) -> None:
    if compile_pattern("/".join(segs)).matches(res):
        assert res.count("/") == len(segs) - 1


@given(st.lists(segment, min_size=1, max_size=4), st.data())
def test_star_replaces_exactly_one_segment(segs: list[str], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(segs) - 1))
    starred = "/".join("*" if j == i else s for j, s in enumerate(segs))
    extra = data.draw(segment)
    assert compile_pattern(starred).matches("/".join(segs))
    longer = [*segs[: i + 1], extra, *segs[i + 1 :]]
    assert not compile_pattern(starred).matches("/".join(longer))


@given(st.lists(segment, min_size=1, max_size=3), st.lists(segment, max_size=6), resource)
def test_globstar_matches_any_depth_below_prefix(
    prefix: list[str], suffix: list[str], other: str
) -> None:
    pat = compile_pattern("/".join([*prefix, "**"]))
    assert pat.matches("/".join(prefix + suffix))
    if other.split("/")[: len(prefix)] != prefix:
        assert not pat.matches(other)


@given(resource)
def test_lone_globstar_matches_everything(res: str) -> None:
    assert compile_pattern("**").matches(res)


@given(st.lists(segment, min_size=1, max_size=3), st.lists(segment, max_size=4))
def test_inner_globstar_matches_zero_or_more_segments(mid: list[str], between: list[str]) -> None:
    pat = compile_pattern("a/**/" + "/".join(mid))
    assert pat.matches("/".join(["a", *between, *mid]))
    assert not pat.matches("/".join(["b", *between, *mid]))


@pytest.mark.parametrize(
    ("pat", "res", "expected"),
    [
        ("model/demo", "model/demo", True),
        ("model/demo", "model/demo2", False),
        ("model/demo", "model/demo/v1", False),
        ("model/*", "model/demo", True),
        ("model/*", "model", False),
        ("model/*", "model/demo/v1", False),
        ("model/gpt-*", "model/gpt-4o", True),
        ("model/gpt-*", "model/llama", False),
        ("dataset/finance/**", "dataset/finance", True),
        ("dataset/finance/**", "dataset/finance/q3/ledger", True),
        ("dataset/finance/**", "dataset/financial", False),
        ("dataset/finance/**", "dataset/hr/q3", False),
        ("**/secret", "secret", True),
        ("**/secret", "a/b/secret", True),
        ("**/secret", "a/b/secret/x", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("a/*/z", "a/b/c/z", False),
    ],
)
def test_documented_examples(pat: str, res: str, expected: bool) -> None:
    assert compile_pattern(pat).matches(res) is expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "model/**/**x",
        "model/**x",
        "model/***",
        "a/**/**",
        "**/**",
        "/model",
        "model/",
        "model//demo",
        "model/../admin",
        "model/./demo",
        "model/de mo",
        "model/de?o",
        "model/[ab]",
        "model/demo\n",
        "a/**/b/**/c/**",
        "x" * 600,
        "/".join(["a"] * 40),
        "*a*a*a*a*a*a*a*a*a*a",
    ],
)
def test_malformed_patterns_are_rejected_with_reason(bad: str) -> None:
    with pytest.raises(InputError, match=r"resource pattern|is empty|longer|segments|wildcards"):
        compile_pattern(bad)


@pytest.mark.parametrize("bad", ["", "model/*", "model/**", "model//x", "a/../b", "a b", "/x"])
def test_malformed_resources_are_rejected(bad: str) -> None:
    with pytest.raises(InputError):
        validate_resource(bad)


@given(st.text(max_size=30))
def test_arbitrary_text_either_compiles_or_raises_input_error(text: str) -> None:
    try:
        compiled = compile_pattern(text)
    except InputError:
        return
    assert compiled.matches(text) or "*" in text


@pytest.mark.timeout(60)
def test_adversarial_inputs_do_not_backtrack_exponentially() -> None:
    # Exponential backtracking here would run for hours; the timeout turns that into a failure.
    pat = compile_pattern("**/x/**/" + "a*" * 6 + "b")
    assert not pat.matches("/".join(["x"] * 31) + "/" + "a" * 400)
    assert pat.matches("/".join(["x"] * 31) + "/" + "a" * 400 + "b")


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("*", "model:invoke", True),
        ("model:*", "model:invoke", True),
        ("model:*", "model:admin:delete", True),
        ("model:*", "models:invoke", False),
        ("model:*", "audit:read", False),
        ("model:invoke", "model:invoke", True),
        ("model:invoke", "model:invoked", False),
    ],
)
def test_action_patterns(pattern: str, action: str, expected: bool) -> None:
    validate_action(pattern, pattern=True)
    validate_action(action)
    assert action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    "bad", ["", "Model:invoke", "model::invoke", "model:", ":x", "model:inv oke", "*:x", "a" * 200]
)
def test_malformed_actions_are_rejected(bad: str) -> None:
    with pytest.raises(InputError, match="action"):
        validate_action(bad, pattern=True)


@pytest.mark.parametrize("wild", ["*", "model:*"])
def test_wildcard_action_is_not_a_concrete_action(wild: str) -> None:
    with pytest.raises(InputError, match="malformed action"):
        validate_action(wild)


@given(st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,5}", fullmatch=True), min_size=1, max_size=4))
def test_namespace_wildcard_covers_exactly_its_namespace(words: list[str]) -> None:
    action = ":".join(words)
    validate_action(action)
    assert action_matches(f"{words[0]}:*", action) == (len(words) > 1)
    assume(len(words) > 1)
    assert not action_matches(f"{words[0]}x:*", action)


@pytest.mark.parametrize("bad", ["", "Alice", "al ice", "-x", "a" * 129, "x/y"])
def test_bad_principal_names(bad: str) -> None:
    with pytest.raises(InputError, match="principal name"):
        validate_principal_name(bad)


@pytest.mark.parametrize("bad", ["", "Reader", "read er", "a" * 65, "a/b"])
def test_bad_role_names(bad: str) -> None:
    with pytest.raises(InputError, match="role name"):
        validate_role_name(bad)
