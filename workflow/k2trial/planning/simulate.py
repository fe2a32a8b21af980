"""Simulated trials of one planning cell, drawn in seeded blocks with numpy.

Model (every parameter comes from the cell's `CellDesign`; their sources are k2trial.planning.scenarios):

* baseline and end-of-treatment values of a patient are bivariate normal on the latent VAS scale: baseline
  B* = mu_b + sd_b Z1, end Y* = mu_b + control_change + effect [treated] + shift[stratum]
  + sd_y (rho Z1 + sqrt(1 - rho^2) Z2), Z1, Z2 independent standard normal; so corr(B*, Y*) = rho, SD(B*) = sd_b,
  SD(Y* | arm, stratum) = sd_y, and the mean change is control_change in the control arm and
  control_change + effect in the treated arm;
* values are then recorded as the VAS records them (`VasScale`): rounded to the recording precision (0.1 cm) and
  clipped to the scale (0-10). Rounding creates ties, which the rank-sum test handles as the analysis does;
  clipping at 0 and 10 makes the recorded effect a little smaller than the latent one. `scale=None` keeps the
  latent normal values (used to check the simulation against the analytic power);
* randomisation: "fixed" gives every trial exactly n_treated and n_control patients and, within each arm, the
  stratum counts of the configured proportions (largest remainder); "permuted_blocks" draws each patient's
  stratum (categorical with the configured proportions) and allocates within each stratum by permuted blocks of
  `block_size` in the allocation ratio, so the arm sizes vary a little around the nominal ones;
* dropout: each patient independently misses the end-of-treatment visit with probability `dropout` (missing
  completely at random); the end value is then NaN;
* assurance cells (`effect_sd` > 0) draw one effect per trial from Normal(effect, effect_sd^2).

Seeds: a cell's random stream is determined by the global seed and the cell's identity only (its id string,
`cell_entropy`), never by its position in a list or the job it runs in. Its trials are drawn in consecutive blocks of
`block_trials` trials, block k from its own generator (SeedSequence(cell entropy, spawn_key=(k,))); batches held in
memory are whole blocks, so the same cell gives the same trials whatever the batch size, and a larger number of
trials extends the same sequence.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SEED_NAMESPACE = "planning"
FIXED = "fixed"
PERMUTED_BLOCKS = "permuted_blocks"


@dataclass(frozen=True)
class VasScale:
    """How values are recorded: rounded to `decimals` and clipped to [lower, upper] (the VAS: 0-10 cm, 0.1 cm)."""

    lower: float = 0.0
    upper: float = 10.0
    decimals: int = 1


@dataclass(frozen=True)
class CellDesign:
    """Everything needed to draw the trials of one cell (units: VAS points; effect = treated - control change)."""

    cell_id: str
    n_treated: int
    n_control: int
    baseline_mean: float
    baseline_sd: float
    end_sd: float
    correlation: float
    control_change: float
    effect: float
    effect_sd: float = 0.0
    dropout: float = 0.0
    strata: tuple[str, ...] = ()
    strata_proportions: tuple[float, ...] = ()
    strata_shift: tuple[float, ...] = ()
    randomisation: str = FIXED
    block_size: int = 4
    ratio: tuple[int, int] = (1, 1)  # treated : control
    scale: VasScale | None = VasScale()

    def __post_init__(self) -> None:
        if self.n_treated < 1 or self.n_control < 1:
            raise ValueError(f"{self.cell_id}: each arm needs at least one patient")
        if not (self.baseline_sd > 0 and self.end_sd > 0):
            raise ValueError(f"{self.cell_id}: SDs must be positive")
        if not -1.0 < self.correlation < 1.0:
            raise ValueError(f"{self.cell_id}: correlation must lie strictly between -1 and 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"{self.cell_id}: dropout must lie in [0, 1)")
        if self.randomisation not in (FIXED, PERMUTED_BLOCKS):
            raise ValueError(f"{self.cell_id}: randomisation must be {FIXED!r} or {PERMUTED_BLOCKS!r}")
        if len(self.strata) != len(self.strata_proportions) or len(self.strata_shift) not in (0, len(self.strata)):
            raise ValueError(f"{self.cell_id}: strata, proportions and shifts differ in length")
        if self.randomisation == PERMUTED_BLOCKS and self.block_size % sum(self.ratio):
            raise ValueError(f"{self.cell_id}: block size {self.block_size} is not a multiple of {sum(self.ratio)}")

    @property
    def n_total(self) -> int:
        return self.n_treated + self.n_control

    @property
    def n_strata(self) -> int:
        return max(len(self.strata), 1)


@dataclass(frozen=True)
class TrialBatch:
    """Simulated trials (rows) x patients (columns) as the analysis sees them (recorded values, NaN missing)."""

    baseline: np.ndarray  # (trials, patients)
    end: np.ndarray  # (trials, patients), NaN where the patient dropped out
    treated: np.ndarray  # bool, (patients,) when shared by all trials, else (trials, patients)
    stratum: np.ndarray | None  # int codes like `treated`, None without strata
    effect: np.ndarray  # (trials,) the latent treated - control difference of each trial

    @property
    def trials(self) -> int:
        return self.baseline.shape[0]

    @property
    def change(self) -> np.ndarray:
        """End minus baseline, computed as the analysis dataset computes chg (aval - base)."""
        return self.end - self.baseline


def cell_entropy(global_seed: int, cell_id: str) -> int:
    """128-bit entropy of a cell's random stream from the global seed and the cell's identity (sha256)."""
    digest = hashlib.sha256(f"{int(global_seed)}:{SEED_NAMESPACE}:{cell_id}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


def block_generator(entropy: int, block: int) -> np.random.Generator:
    """The generator of block `block` (0, 1, ...) of a cell."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(int(block),))))


def largest_remainder(total: int, proportions: tuple[float, ...]) -> np.ndarray:
    """Integer counts summing to `total` in the given proportions (largest remainder; ties to the earlier level)."""
    shares = np.asarray(proportions, dtype=float)
    shares = shares / shares.sum()
    raw = total * shares
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def _fixed_layout(design: CellDesign) -> tuple[np.ndarray, np.ndarray | None]:
    """Arms (treated first) and, within each arm, stratum codes in the configured proportions."""
    treated = np.r_[np.ones(design.n_treated, dtype=bool), np.zeros(design.n_control, dtype=bool)]
    if not design.strata:
        return treated, None
    codes = [
        np.repeat(np.arange(len(design.strata)), largest_remainder(n, design.strata_proportions))
        for n in (design.n_treated, design.n_control)
    ]
    return treated, np.concatenate(codes)


@lru_cache(maxsize=64)
def block_arrangements(size: int, treated: int) -> np.ndarray:
    """Every distinct order of `treated` treated and size - treated control places in a block (rows, bool), in
    lexicographic order of the treated positions; a permuted block is one of them with equal probability."""
    rows = []
    for places in itertools.combinations(range(size), treated):
        row = np.zeros(size, dtype=bool)
        row[list(places)] = True
        rows.append(row)
    table = np.array(rows)
    table.setflags(write=False)
    return table


def _permuted_block_allocation(design: CellDesign, rng: np.random.Generator, trials: int):
    """Per trial: each patient's stratum (categorical) and arm from permuted blocks within the stratum."""
    n = design.n_total
    levels = design.n_strata
    if design.strata:
        cumulative = np.cumsum(np.asarray(design.strata_proportions, dtype=float))
        cumulative /= cumulative[-1]
        stratum = np.minimum(np.searchsorted(cumulative, rng.random((trials, n)), side="right"), levels - 1)
    else:
        stratum = np.zeros((trials, n), dtype=np.int64)
    size = design.block_size
    arrangements = block_arrangements(size, size * design.ratio[0] // sum(design.ratio))
    blocks = -(-n // size)
    # Every block of every stratum of every trial: one of the distinct arrangements of the block, all equally likely
    # (the distribution of a random permutation of the block's treated and control places).
    chosen = rng.integers(0, len(arrangements), size=(trials, levels, blocks))
    sequence = arrangements[chosen].reshape(trials, levels, blocks * size)
    position = np.zeros((trials, n), dtype=np.int64)
    for level in range(levels):
        member = stratum == level
        position += np.where(member, np.cumsum(member, axis=1) - 1, 0)
    flat = sequence.reshape(trials, levels * blocks * size)
    treated = np.take_along_axis(flat, stratum * (blocks * size) + position, axis=1)
    return treated, (stratum if design.strata else None)


def _record_in_place(values: np.ndarray, scale: VasScale | None) -> None:
    """Round to the recording precision and clip to the scale, in place (no-op for scale None)."""
    if scale is None:
        return
    factor = 10.0**scale.decimals
    np.multiply(values, factor, out=values)
    np.rint(values, out=values)
    np.clip(values, scale.lower * factor, scale.upper * factor, out=values)
    np.divide(values, factor, out=values)


def draw_block(design: CellDesign, rng: np.random.Generator, trials: int) -> TrialBatch:
    """`trials` trials of a cell from one generator; the draws come in a fixed order (effect, allocation, Z1, Z2,
    dropout), so a block is reproduced exactly by its generator. Arithmetic in place (few temporary arrays)."""
    n = design.n_total
    if design.effect_sd > 0:
        effect = design.effect + design.effect_sd * rng.standard_normal(trials)
    else:
        effect = np.full(trials, float(design.effect))
    if design.randomisation == FIXED:
        treated, stratum = _fixed_layout(design)
    else:
        treated, stratum = _permuted_block_allocation(design, rng, trials)
    baseline = rng.standard_normal((trials, n))  # Z1
    end = rng.standard_normal((trials, n))  # Z2
    rho = design.correlation
    # end = mu_b + control_change + effect [treated] + shift[stratum] + sd_y (rho Z1 + sqrt(1 - rho^2) Z2)
    end *= design.end_sd * np.sqrt(1.0 - rho * rho)
    end += (design.end_sd * rho) * baseline
    end += design.baseline_mean + design.control_change
    if design.effect_sd > 0 or treated.ndim == 2:
        np.add(end, effect[:, None], out=end, where=np.broadcast_to(treated, end.shape))
    else:
        end += design.effect * treated
    if stratum is not None and design.strata_shift and any(design.strata_shift):
        end += np.asarray(design.strata_shift, dtype=float)[stratum]
    baseline *= design.baseline_sd
    baseline += design.baseline_mean
    _record_in_place(baseline, design.scale)
    _record_in_place(end, design.scale)
    if design.dropout > 0:
        end[rng.random((trials, n)) < design.dropout] = np.nan
    return TrialBatch(baseline=baseline, end=end, treated=treated, stratum=stratum, effect=effect)


def _concatenate(parts: list[TrialBatch]) -> TrialBatch:
    if len(parts) == 1:
        return parts[0]
    shared = parts[0].treated.ndim == 1

    def join(name: str):
        first = getattr(parts[0], name)
        if first is None:
            return None
        if shared and name in ("treated", "stratum"):
            return first
        return np.concatenate([getattr(p, name) for p in parts], axis=0)

    return TrialBatch(*(join(name) for name in ("baseline", "end", "treated", "stratum", "effect")))


def batch_blocks(design: CellDesign, trials: int, *, block_trials: int, max_values: int) -> list[range]:
    """The seed blocks of each memory batch: whole blocks, at most `max_values` patient values per array (at least
    one block per batch)."""
    if trials < 1 or block_trials < 1:
        raise ValueError("trials and block_trials must be positive")
    blocks_per_batch = max(1, max_values // (block_trials * design.n_total))
    n_blocks = -(-trials // block_trials)
    return [range(first, min(first + blocks_per_batch, n_blocks)) for first in range(0, n_blocks, blocks_per_batch)]


def draw_batch(design: CellDesign, blocks: range, trials: int, *, entropy: int, block_trials: int) -> TrialBatch:
    """The trials of the given seed blocks of a cell (of its `trials` trials in all), in block order."""
    parts = []
    for block in blocks:
        # Always a whole block, then cut: the first trials of a block do not depend on how many are kept.
        drawn = draw_block(design, block_generator(entropy, block), block_trials)
        parts.append(_head(drawn, min(block_trials, trials - block * block_trials)))
    return _concatenate(parts)


def simulate_trials(
    design: CellDesign,
    trials: int,
    *,
    global_seed: int,
    block_trials: int = 500,
    max_values: int = 200_000,
) -> Iterator[TrialBatch]:
    """The cell's `trials` trials in memory batches of whole seed blocks (at most `max_values` patient values per
    array, at least one block). Trial t is always the same trial, whatever `max_values`."""
    entropy = cell_entropy(global_seed, design.cell_id)
    for blocks in batch_blocks(design, trials, block_trials=block_trials, max_values=max_values):
        yield draw_batch(design, blocks, trials, entropy=entropy, block_trials=block_trials)


def _head(batch: TrialBatch, size: int) -> TrialBatch:
    if size == batch.trials:
        return batch

    def cut(values):
        return values if values is None or values.ndim == 1 else values[:size]

    return TrialBatch(cut(batch.baseline), cut(batch.end), cut(batch.treated), cut(batch.stratum), batch.effect[:size])
