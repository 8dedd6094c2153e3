"""What a synthetic slide looks like: the challenge shapes, the channel layout and the scene
parameters. Light on purpose (no numba, no scipy): the CLI reads it to build its options.

All lengths are pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

#: challenge image shapes (C, Y, X), as on Synapse folder syn26848688
PRESETS: dict[str, tuple[int, int, int]] = {
    "exemplar-001": (12, 3138, 2509),
    "LUNG-1-LN": (44, 10101, 9666),
    "WD-76845-097": (40, 27120, 26139),
}
CHANNELS_PER_CYCLE = 4
ROLES = ("DNA", "Cyto", "Membrane", "Stroma")


@dataclass(frozen=True)
class SceneParams:
    """What the synthetic tissue looks like. Lengths in pixels.

    density: candidate nuclei per 10,000 px² of fully cellular tissue before the hard-core
        thinning; the realised density is lower and is reported after generation.
    overlap: two nuclei centres are at least ``overlap x (r1 + r2)`` apart (1.0: no overlap).
    tissue_scale: size of the tissue / empty-glass pattern.
    tissue_fraction: expected fraction of a large slide covered by tissue (a small image may have
        more or less: the pattern is tissue_scale pixels across).
    out_of_focus: fraction (about) of the tissue that is blurred as if out of focus.
    """

    seed: int = 0
    diameter_mean: float = 13.0
    diameter_sd: float = 2.0
    density: float = 90.0
    overlap: float = 0.75
    tissue_scale: float = 1500.0
    tissue_fraction: float = 0.65
    out_of_focus: float = 0.15

    def validate(self) -> None:
        """Raise ValueError naming the first parameter out of range."""
        checks = [
            (self.seed >= 0, "seed must be >= 0"),
            (3.0 <= self.diameter_mean <= 60.0, "diameter_mean must be in [3, 60] px"),
            (0.0 <= self.diameter_sd <= self.diameter_mean / 2, "diameter_sd must be in [0, diameter_mean/2] px"),
            (0.0 < self.density <= 200.0, "density must be in (0, 200] nuclei per 10,000 px²"),
            (0.3 <= self.overlap <= 1.5, "overlap must be in [0.3, 1.5]"),
            (self.tissue_scale >= 16, "tissue_scale must be >= 16 px"),
            (0.0 < self.tissue_fraction <= 1.0, "tissue_fraction must be in (0, 1]"),
            (0.0 <= self.out_of_focus <= 1.0, "out_of_focus must be in [0, 1]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)


def channel_names(n_channels: int) -> list[str]:
    """CyCIF-style channel names: ``DNA_1, Cyto_1, Membrane_1, Stroma_1, DNA_2, ...``."""
    return [f"{ROLES[c % CHANNELS_PER_CYCLE]}_{c // CHANNELS_PER_CYCLE + 1}" for c in range(n_channels)]
