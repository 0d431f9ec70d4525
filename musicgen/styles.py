"""Styles in one model: each top-level subfolder of a corpus is a style, named by a STYLE event after BOS.

``musicgen ingest DIR --styles`` / ``musicgen train DIR --styles`` take the top-level subfolders of DIR that hold music
files as the styles (``corpus_cli.find_styles``: sorted names, recorded as ``TokenizerConfig.styles``); every piece
gets the STYLE event of its folder right after BOS (``BOS STYLE KEY TIME_SIG …``, see ``musicgen.tokenizer``) and the
model a ``style`` context feature (1 + style index, 0 unknown; ``musicgen.context``), so it conditions on the style at
every step, not only through its memory of the STYLE event. A music file directly in DIR has no style: an error naming
it.

Caching: a styled piece's cache key is its content hash plus ``@<style name>`` (``styled_key``), so a file moved to
another style folder is tokenized again, and one file copied into two style folders is two pieces (one per style;
the near-duplicate split keeps the copies on one side).

Sampling: ``musicgen sample --style NAME`` forces that STYLE after BOS; without it every sample takes the bundle's
default style when it records one (``musicgen train --default-style NAME``: ``default_style`` in its metrics,
``recorded_default``), else each sample's style is drawn from the training pieces' style shares that ``musicgen
train`` records in the bundle's metrics (``style_pieces``), with an RNG of its own seeded from the sample seed
(``draw_styles``), so forcing the drawn style regenerates the sample.
What else a sample draws from the training pieces (its voice cap, ``musicgen.voices``; its key, ``musicgen.keys``)
comes from the pieces of its own style: ``musicgen train`` records those counts per style as well
(``by_style``: ``voice_pieces_by_style``, ``key_pieces_by_style``) and ``draw_for_styles`` uses them, so a folk
sample of a Bach-and-folk model is not capped at four voices because most training pieces are chorales.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicgen.errors import UsageError

STYLE_SALT = 0x5717E  # mixed into the sample seed for the style draws: the event draws stay as they were
METRIC = "style_pieces"  # metrics.json: {style name: training pieces}
DEFAULT = "default_style"  # metrics.json (optional): the style name sampling takes when none is asked for


# ---------------------------------------------------------------------------------------------------- the corpus
def style_of_path(rel: str) -> str | None:
    """The style of a music file from its path relative to the corpus (posix): its top folder, None directly in it."""
    head, sep, _ = rel.partition("/")
    return head if sep else None


def check_paths(music: Sequence[str], styles: Sequence[str] | None, corpus) -> list[str]:
    """The style name of each relative music path; ``UsageError`` for files directly in the corpus folder (naming
    them) or in a folder that is not one of ``styles`` (None: any folder is a style)."""
    loose = [rel for rel in music if style_of_path(rel) is None]
    if loose:
        more = f" and {len(loose) - 3} more" if len(loose) > 3 else ""
        raise UsageError(f"--styles: music files directly in {str(corpus)!r} have no style folder: "
                         f"{', '.join(map(repr, loose[:3]))}{more}; move them into a subfolder named after their style")
    names = [style_of_path(rel) for rel in music]
    unknown = sorted(set(names) - set(styles)) if styles is not None else []
    if unknown:
        raise UsageError(f"--styles: folder {unknown[0]!r} of {str(corpus)!r} is not one of the tokenizer's styles "
                         f"{list(styles)}")
    return names


def styled_key(content_key: str, style: str | None) -> str:
    """The cache key of a file: its content hash, plus ``@<style>`` when it has a style."""
    return content_key if style is None else f"{content_key}@{style}"


def style_of_key(key: str) -> str | None:
    """The style name in a file or piece cache key (inverse of ``styled_key``), None without one."""
    head = key.split("#", 1)[0]
    return head.split("@", 1)[1] if "@" in head else None


# ------------------------------------------------------------------------------------------------------ the tokens
def parse_style(name: str, styles: Sequence[str], where: str = "the bundle", flag: str = "--style") -> int:
    """A style name → its index in ``styles``; ``UsageError`` naming ``flag`` and listing the known ones."""
    if not styles:
        raise UsageError(f"{flag}: {where} has no styles (train with --styles on a folder of style subfolders); "
                         f"got {name!r}")
    if name not in styles:
        raise UsageError(f"{flag}: unknown style {name!r}; {where} knows {', '.join(styles)}")
    return list(styles).index(name)


def piece_style(tokens, tokenizer) -> int | None:
    """The value of the first STYLE event of ``tokens`` (int ids, shape (T,)), None without one (or no styles)."""
    values = tokenizer.values_of(tokens, "STYLE")
    return int(values[0]) if values.size else None


def with_style(tokens, tokenizer, style: int) -> np.ndarray:
    """``tokens`` (int, shape (T,), starting with BOS) with STYLE(``style``) right after the BOS (int64 (T + 1,));
    unchanged (as int64) when they already name that style; ``UsageError`` when they name another."""
    t = np.asarray(tokens, np.int64)
    have = piece_style(t, tokenizer)
    if have is not None and have != style:
        names = tokenizer.config.styles
        raise UsageError(f"--style: the primer is in style {names[have]!r}, not {names[style]!r}")
    return t if have is not None else np.insert(t, 1, tokenizer.token("STYLE", int(style)))


def head_styles(pieces, tokenizer) -> list[int | None]:
    """Each token piece's STYLE value (``piece_style`` of its head: BOS STYLE is enough), None without one."""
    return [piece_style(np.asarray(tokens[:4]), tokenizer) for tokens in pieces]


def style_counts(pieces, tokenizer) -> dict[str, int]:
    """``{style name: pieces}`` over token pieces (each piece's first STYLE; every style listed, 0 when unused)."""
    counts = dict.fromkeys(tokenizer.config.styles, 0)
    for style in head_styles(pieces, tokenizer):
        if style is not None:
            counts[tokenizer.config.styles[style]] += 1
    return counts


def by_style(metric: str) -> str:
    """The metrics.json name of ``metric``'s per-style counts (``{style name: counts}``)."""
    return f"{metric}_by_style"


def counts_by_style(pieces, tokenizer, count) -> dict[str, dict]:
    """``{style name: count(the pieces of that style, tokenizer)}`` for a tokenizer with styles (``{}`` without);
    a style with no pieces, or whose counts are empty, is left out."""
    names = tokenizer.config.styles
    pieces = list(pieces) if names else []
    groups: dict[str, list] = {}
    for tokens, style in zip(pieces, head_styles(pieces, tokenizer)):
        if style is not None:
            groups.setdefault(names[style], []).append(tokens)
    found = {name: count(groups[name], tokenizer) for name in names if name in groups}
    return {name: counts for name, counts in found.items() if counts}


def draw_for_styles(metrics: dict | None, metric: str, draw, seed: int, count: int, styles=None,
                    names: Sequence[str] = ()) -> np.ndarray | None:
    """int64 (count,): ``draw(counts, seed, count)`` (``voices.draw_voice_caps``, ``keys.draw_keys``) where sample i
    takes draw i from the counts of its style ``styles[i]`` (STYLE values, indices into ``names``) when the bundle
    records them (``by_style(metric)``), else from the pooled ``metrics[metric]``; None without pooled counts (an
    older bundle). Draw i depends on ``seed``, i and the style's counts alone, so forcing a sample's style (``--style``)
    draws it again."""
    metrics = metrics or {}
    out = draw(metrics.get(metric), seed, count)
    per_style = metrics.get(by_style(metric)) or {}
    if out is None or styles is None or not per_style:
        return out
    styles = np.broadcast_to(np.asarray(styles, np.int64), (count,))
    for value in np.unique(styles):
        counts = per_style.get(names[int(value)]) if 0 <= value < len(names) else None
        own = draw(counts, seed, count) if counts else None
        if own is not None:
            out[styles == value] = own[styles == value]
    return out


def recorded_default(metrics: dict | None, names: Sequence[str]) -> int | None:
    """The index in ``names`` of the bundle's recorded default style (``DEFAULT`` in its metrics), None when it
    records none (or one its styles no longer name)."""
    name = (metrics or {}).get(DEFAULT)
    return list(names).index(name) if isinstance(name, str) and name in names else None


def default_style(metrics: dict | None, names: Sequence[str]) -> int | None:
    """The style a bundle takes when none is asked for and one is needed for all (``musicgen live``, fine-tuning or
    evaluating on a folder without style folders): its recorded default (``recorded_default``), else the style with
    the most training pieces (the first on a tie or without counts); None without styles."""
    if not names:
        return None
    found = recorded_default(metrics, names)
    return found if found is not None else int(np.argmax(style_shares((metrics or {}).get(METRIC), names)))


def default_style_name(bundle) -> str | None:
    """``default_style`` of a bundle, as its style name (None without styles)."""
    names = bundle.tokenizer_config.styles
    found = default_style(bundle.metrics, names)
    return None if found is None else names[found]


def style_shares(counts: dict[str, int] | None, styles: Sequence[str]) -> np.ndarray:
    """float64 (len(styles),): each style's share of ``counts`` (uniform without counts, e.g. an older bundle)."""
    n = np.array([float((counts or {}).get(name, 0)) for name in styles])
    return n / n.sum() if n.sum() > 0 else np.full(len(styles), 1.0 / len(styles))


def draw_styles(shares: np.ndarray, seed: int, count: int, salt: int = STYLE_SALT) -> np.ndarray:
    """int64 (count,): indices drawn from ``shares`` by an RNG of their own (seed mixed with ``salt``, by default
    ``STYLE_SALT``; ``musicgen.voices`` and ``musicgen.keys`` draw with their own); draw i depends on ``seed`` and i
    alone."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), salt]))
    return np.searchsorted(np.cumsum(shares), rng.random(count) * np.sum(shares), side="right").clip(
        0, len(shares) - 1).astype(np.int64)


def draw_counted(counts: dict | None, value_of, seed: int, count: int, salt: int) -> np.ndarray | None:
    """int64 (count,): ``value_of(name)`` of names drawn from ``counts`` (``{name: training pieces}``, in its dict
    order) in proportion to their counts, by ``draw_styles`` with ``salt``; None without counts (an older bundle)."""
    if not counts:
        return None
    values = np.array([value_of(name) for name in counts], np.int64)
    shares = np.array([float(c) for c in counts.values()])
    if shares.sum() <= 0:
        return None
    return values[draw_styles(shares / shares.sum(), seed, count, salt=salt)]

