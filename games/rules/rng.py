"""Deterministic splitmix64 PRNG whose whole state is one int, so game states checkpoint as plain JSON."""

from __future__ import annotations

from dataclasses import dataclass

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_FLOAT_UNIT = 1.0 / (1 << 53)


@dataclass(slots=True)
class Rng:
    """splitmix64: tiny, fast, well mixed even for adjacent seeds, and free of platform-dependent maths."""

    state: int

    def __post_init__(self) -> None:
        # Any int is a valid seed (negative, huge); keep the state a canonical unsigned 64-bit value.
        self.state &= _MASK

    def next_u64(self) -> int:
        self.state = (self.state + _GAMMA) & _MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def next_float(self) -> float:
        """Uniform in [0, 1) with 53 random bits, exactly representable."""
        return (self.next_u64() >> 11) * _FLOAT_UNIT

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.next_float()

    def randint(self, a: int, b: int) -> int:
        """Uniform integer in [a, b], both inclusive."""
        span = b - a + 1
        if span <= 0:
            raise ValueError(f"empty range [{a}, {b}]")
        # Rejection sampling: a plain modulo would favour the low values whenever span does not divide 2**64.
        limit = (1 << 64) - (1 << 64) % span
        while True:
            value = self.next_u64()
            if value < limit:
                return a + value % span
