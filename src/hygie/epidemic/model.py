"""Data types of the epidemic service: disease parameters, populations, phases, scenarios.

The disease model is the EPIcx lab's age-structured COVID-19 model (Di Domenico et al.,
BMC Med 18:240, 2020; Nat Commun 12:1073, 2021): S -> E -> I_p -> {I_as, I_ps, I_ms,
I_ss}; I_ss -> H (ward) or U (ICU); H, U -> R or D; four age classes [0,11), [11,19),
[19,65), 65+. Defaults are the published values (see shared data ``epidemic/SOURCE.md``).

Parameters are stored unchanged in frozen dataclasses (estimator manners, STYLE.md §8);
derived arrays are computed by methods, and checked once by ``validate()``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from hygie.epidemic.errors import InvalidInput

#: Compartments, in the order of the last axis of every state array.
COMPARTMENTS = ("S", "E", "I_p", "I_as", "I_ps", "I_ms", "I_ss", "H", "U", "R", "D")
#: Age classes, in the order of the age axis (years).
AGE_CLASSES = ("0-10", "11-18", "19-64", "65+")
N_AGES = len(AGE_CLASSES)
#: Infectious classes, in the order of the kernels' class axis (compartments 2..6).
INFECTIOUS = ("I_p", "I_as", "I_ps", "I_ms", "I_ss")
ADULT = 2

#: Columns of the per-age transition table handed to the kernels.
TRANSITION_COLUMNS = (
    "latent_exit",  # E -> I_p, probability per day
    "prodromal_exit",  # I_p -> one of the four infectious classes, per day
    "infectious_exit",  # I_as, I_ps, I_ms -> R and I_ss -> H/U, per day
    "p_as",  # share of I_p exits to I_as
    "q_ps",  # share of the non-asymptomatic exits to I_ps
    "q_ms",  # share of the remaining (mild or severe) exits to I_ms
    "p_icu",  # share of severe exits to U (the rest to H)
    "ward_recovery",  # H -> R per day
    "ward_death_cond",  # H -> D per day, given not recovered that day
    "icu_recovery",  # U -> R per day
    "icu_death_cond",  # U -> D per day, given not recovered that day
)


def _vec(values: tuple[float, ...], name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (N_AGES,):
        raise InvalidInput(f"{name} must have one value per age class ({N_AGES})")
    return arr


@dataclass(frozen=True)
class DiseaseParameters:
    """Natural history and transmission parameters (published defaults).

    Durations are mean sojourn times in days; the daily chain-binomial leaves a
    compartment with probability ``1 / duration`` per day, as the published code does,
    so the mean sojourn is exactly the duration.
    """

    #: Transmission rate per contact (published MLE for children infectiousness 0.55).
    beta: float = 0.0942
    latent_days: float = 3.7
    prodromal_days: float = 1.5
    infectious_days: float = 2.3
    #: Share of infections that stay asymptomatic.
    asymptomatic: float = 0.4
    #: Among symptomatic cases, by age class: paucisymptomatic and severe shares.
    paucisymptomatic: tuple[float, ...] = (1.0, 1.0, 0.2, 0.2)
    severe: tuple[float, ...] = (0.0, 0.0, 0.04, 0.27)
    #: Probability that a severe case goes to ICU (else to a ward).
    icu_given_severe: float = 0.24357
    #: ICU exit rate per day and probability of recovery at exit, by age class.
    icu_exit_rate: tuple[float, ...] = (0.0, 0.0, 1 / 21.1, 1 / 20.689)
    icu_recovery: tuple[float, ...] = (0.0, 0.0, 0.76, 0.54)
    #: Ward exit rates per day, to recovery and to death, by age class.
    ward_recovery_rate: tuple[float, ...] = (0.0, 0.0, 0.083, 0.033)
    ward_death_rate: tuple[float, ...] = (0.0, 0.0, 0.0031, 0.0155)
    #: Relative susceptibility by age class.
    susceptibility: tuple[float, ...] = (0.5, 0.5, 1.0, 1.0)
    #: Relative infectiousness of prodromal, asymptomatic and paucisymptomatic cases.
    relative_infectiousness: float = 0.55
    #: The same for young children [0,11) (0.55, 0.33, 0.25 or 0.1 in the paper).
    children_infectiousness: float = 0.55
    #: Contact factor of severe cases (they mostly stay home) and of detected cases.
    severe_contacts: float = 0.25
    detected_contacts: float = 0.1

    def validate(self) -> DiseaseParameters:
        """Check every value against its domain; return self (for chaining)."""
        if not (self.beta > 0 and math.isfinite(self.beta)):
            raise InvalidInput("beta must be a positive finite number")
        for name in ("latent_days", "prodromal_days", "infectious_days"):
            if getattr(self, name) < 1.0:
                raise InvalidInput(f"{name} must be at least 1 day (daily time step)")
        probs = {
            "asymptomatic": self.asymptomatic,
            "icu_given_severe": self.icu_given_severe,
            "relative_infectiousness": self.relative_infectiousness,
            "children_infectiousness": self.children_infectiousness,
            "severe_contacts": self.severe_contacts,
            "detected_contacts": self.detected_contacts,
        }
        for name, value in probs.items():
            if not 0.0 <= value <= 1.0:
                raise InvalidInput(f"{name} must lie in [0, 1]")
        ps = _vec(self.paucisymptomatic, "paucisymptomatic")
        ss = _vec(self.severe, "severe")
        if np.any(ps < 0) or np.any(ss < 0) or np.any(ps + ss > 1 + 1e-12):
            raise InvalidInput("paucisymptomatic + severe must lie in [0, 1] for each age")
        for name in ("icu_exit_rate", "icu_recovery", "susceptibility"):
            v = _vec(getattr(self, name), name)
            if np.any(v < 0) or np.any(v > 1):
                raise InvalidInput(f"{name} values must lie in [0, 1]")
        out = _vec(self.ward_recovery_rate, "ward_recovery_rate") + _vec(
            self.ward_death_rate, "ward_death_rate"
        )
        if np.any(out > 1):
            raise InvalidInput("ward exit rates must sum to at most 1 per day")
        return self

    # --- derived arrays ---------------------------------------------------------------

    def class_shares(self) -> np.ndarray:
        """Shares of I_p exits to (I_as, I_ps, I_ms, I_ss), shape (n_ages, 4)."""
        ps = _vec(self.paucisymptomatic, "paucisymptomatic")
        ss = _vec(self.severe, "severe")
        sym = 1.0 - self.asymptomatic
        return np.stack(
            [np.full(N_AGES, self.asymptomatic), sym * ps, sym * (1 - ps - ss), sym * ss], axis=1
        )

    def transition_table(self) -> np.ndarray:
        """Per-age daily probabilities, shape (n_ages, len(TRANSITION_COLUMNS))."""
        shares = self.class_shares()
        table = np.zeros((N_AGES, len(TRANSITION_COLUMNS)))
        table[:, 0] = 1.0 / self.latent_days
        table[:, 1] = 1.0 / self.prodromal_days
        table[:, 2] = 1.0 / self.infectious_days
        table[:, 3] = shares[:, 0]
        rest = 1.0 - shares[:, 0]
        table[:, 4] = np.divide(shares[:, 1], rest, out=np.zeros(N_AGES), where=rest > 0)
        rest2 = rest - shares[:, 1]
        table[:, 5] = np.divide(shares[:, 2], rest2, out=np.zeros(N_AGES), where=rest2 > 1e-12)
        table[:, 6] = self.icu_given_severe
        h_r = np.asarray(self.ward_recovery_rate)
        h_d = np.asarray(self.ward_death_rate)
        table[:, 7] = h_r
        table[:, 8] = np.divide(h_d, 1 - h_r, out=np.zeros(N_AGES), where=h_r < 1)
        mu = np.asarray(self.icu_exit_rate)
        rec = np.asarray(self.icu_recovery)
        u_r = mu * rec
        table[:, 9] = u_r
        table[:, 10] = np.divide(mu * (1 - rec), 1 - u_r, out=np.zeros(N_AGES), where=u_r < 1)
        return np.clip(table, 0.0, 1.0)

    def infectiousness(self) -> np.ndarray:
        """Relative infectiousness of each infectious class by infector age, (5, n_ages)."""
        r = np.full(N_AGES, self.relative_infectiousness)
        r[0] = self.children_infectiousness
        return np.stack([r, r, r, np.ones(N_AGES), np.ones(N_AGES)])

    def contact_factors(self, testing: float) -> np.ndarray:
        """Contact factor of each infectious class when a share ``testing`` of cases is
        detected and isolated (published ``x_test``), shape (5,): prodromal cases are not
        yet detectable; severe ones keep ``severe_contacts`` unless detected."""
        x = float(testing)
        d = self.detected_contacts
        mild = x * d + (1 - x)
        return np.array([1.0, mild, mild, mild, x * d + (1 - x) * self.severe_contacts])

    def expected_days(self) -> np.ndarray:
        """Expected days an infection spends in each infectious class, (5, n_ages); the
        weights of the next-generation matrix."""
        shares = self.class_shares()
        days = np.empty((5, N_AGES))
        days[0] = self.prodromal_days
        days[1:] = shares.T * self.infectious_days
        return days


@dataclass(frozen=True, eq=False)
class Population:
    """Residents of each patch (region, département) by age class.

    ``sizes`` has shape (n_patches, n_ages), in people.
    """

    codes: tuple[str, ...]
    sizes: np.ndarray
    names: tuple[str, ...] = ()

    def validate(self) -> Population:
        sizes = np.asarray(self.sizes)
        if sizes.ndim != 2 or sizes.shape != (len(self.codes), N_AGES):
            raise InvalidInput("population sizes must have shape (n_patches, 4)")
        if not np.all(np.isfinite(sizes)) or np.any(sizes < 0) or np.any(sizes.sum(1) <= 0):
            raise InvalidInput("population sizes must be non-negative with people in each patch")
        if len(set(self.codes)) != len(self.codes):
            raise InvalidInput("patch codes must be unique")
        return self

    @property
    def n_patches(self) -> int:
        return len(self.codes)

    def index(self, code: str) -> int:
        try:
            return self.codes.index(str(code))
        except ValueError:
            raise InvalidInput(f"unknown patch {code!r}; known: {', '.join(self.codes)}") from None

    def label(self, i: int) -> str:
        return self.names[i] if self.names else self.codes[i]


@dataclass(frozen=True)
class Phase:
    """A period during which a contact matrix (times ``scale``) applies, in some patches.

    ``end`` is exclusive; None runs to the end. ``testing`` is the share of cases detected
    and isolated (their contacts times ``detected_contacts``). Later phases in a scenario
    override earlier ones where they overlap.
    """

    start: date
    matrix: str
    end: date | None = None
    scale: float = 1.0
    testing: float = 0.0
    patches: tuple[str, ...] | None = None
    label: str = ""


@dataclass(frozen=True)
class Seed:
    """Initial infections: ``count`` people of ``age`` in the prodromal compartment."""

    patch: str
    count: float
    age: int = ADULT


@dataclass(frozen=True)
class Scenario:
    """What to simulate: dates, seeding, the contact phases, capacities.

    ``icu_capacity`` is in beds per patch code (``"*"`` for the total over patches).
    """

    name: str
    start: date
    days: int
    phases: tuple[Phase, ...] = ()
    seeds: tuple[Seed, ...] = (Seed("11", 50.0),)
    baseline_matrix: str = "baseline"
    icu_capacity: dict[str, float] = field(default_factory=dict)
    runs: int = 200
    random_seed: int | None = None
    beta: float | None = None
    beta_by_patch: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=d) for d in range(self.days)]

    def day_index(self, when: date) -> int:
        """Index of ``when`` on this scenario's day axis (may be negative or past the end)."""
        return (when - self.start).days
