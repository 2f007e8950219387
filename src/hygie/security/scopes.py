"""SMART App Launch scopes: parsing, v1 to v2 mapping, and the access question.

A token carries a space-separated ``scope`` string (RFC 6749 §3.3). Each word is one of:

* a resource scope, SMART v2 syntax
  (https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html#scopes-for-requesting-fhir-resources):
  ``(patient|user|system)/(ResourceType|*).(c?r?u?d?s?)`` optionally followed by
  ``?param=value&...``, a query that narrows what the scope grants (kept parsed on the
  scope; enforcing it belongs to the access rules that read ``ScopeSet.grants``);
* a resource scope in SMART v1 syntax, ``.read``, ``.write`` or ``.*``, mapped to v2 as
  the specification's "scope equivalence" table says: read = ``rs``, write = ``cud``,
  ``*`` = ``cruds``;
* a launch or identity scope: ``openid``, ``fhirUser``, ``profile``, ``launch``,
  ``launch/patient``, ``launch/encounter``, ``offline_access``, ``online_access``;
* a platform service scope, ``<service>:<permission>`` in lower case (for example
  ``mobilization:manage``), for routes that are not FHIR interactions.

Anything else is refused with a ``ScopeError`` that names the word and what is wrong
with it, because a silently ignored scope is a permission nobody can explain later.

The grammar is small and the SMART reference libraries are not Python, so it is parsed
here with one regular expression per form.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

#: SMART v2 interactions: create, read, update, delete, search (in the order the
#: specification requires them to be written).
INTERACTIONS = "cruds"

#: Scope contexts: on behalf of a patient, of a signed-in user, or of a system.
CONTEXTS = ("patient", "user", "system")

#: Launch and identity scopes recognised as they are (SMART App Launch §scopes, OIDC).
IDENTITY_SCOPES = frozenset(
    {
        "openid",
        "fhirUser",
        "profile",
        "launch",
        "launch/patient",
        "launch/encounter",
        "offline_access",
        "online_access",
    }
)

#: SMART v1 permission words and their v2 equivalents.
V1_PERMISSIONS = {"read": "rs", "write": "cud", "*": "cruds"}

_R4_TYPE_NAMES = """
    Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic Binary BiologicallyDerivedProduct BodyStructure Bundle
    CapabilityStatement CarePlan CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim
    ClaimResponse ClinicalImpression CodeSystem Communication CommunicationRequest
    CompartmentDefinition Composition ConceptMap Condition Consent Contract Coverage
    CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device
    DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport
    DocumentManifest DocumentReference EffectEvidenceSynthesis Encounter Endpoint
    EnrollmentRequest EnrollmentResponse EpisodeOfCare EventDefinition Evidence
    EvidenceVariable ExampleScenario ExplanationOfBenefit FamilyMemberHistory Flag Goal
    GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy Immunization
    ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan
    Invoice Library Linkage List Location Measure MeasureReport Media Medication
    MedicationAdministration MedicationDispense MedicationKnowledge MedicationRequest
    MedicationStatement MedicinalProduct MedicinalProductAuthorization
    MedicinalProductContraindication MedicinalProductIndication MedicinalProductIngredient
    MedicinalProductInteraction MedicinalProductManufactured MedicinalProductPackaged
    MedicinalProductPharmaceutical MedicinalProductUndesirableEffect MessageDefinition
    MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
    ObservationDefinition OperationDefinition OperationOutcome Organization
    OrganizationAffiliation Parameters Patient PaymentNotice PaymentReconciliation Person
    PlanDefinition Practitioner PractitionerRole Procedure Provenance Questionnaire
    QuestionnaireResponse RelatedPerson RequestGroup ResearchDefinition
    ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
    RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen
    SpecimenDefinition StructureDefinition StructureMap Subscription Substance
    SubstanceNucleicAcid SubstancePolymer SubstanceProtein SubstanceReferenceInformation
    SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
    TerminologyCapabilities TestReport TestScript ValueSet VerificationResult
    VisionPrescription
"""

#: Every resource type of FHIR R4 (4.0.1), so that a misspelt type is caught at once.
R4_RESOURCE_TYPES = frozenset(_R4_TYPE_NAMES.split())

_RESOURCE_SCOPE = re.compile(
    r"(?P<context>[^/?]*)/(?P<type>[^.?/]*)(?:\.(?P<perms>[^?]*))?(?:\?(?P<query>.*))?", re.S
)
_V2_PERMISSIONS = re.compile(r"c?r?u?d?s?")
_SERVICE_SCOPE = re.compile(r"[a-z][a-z0-9-]*:[a-z][a-z0-9.-]*")
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]*")


class ScopeError(ValueError):
    """Raised for a scope word that is not valid; the message names it and the fault."""

    def __init__(self, scope: str, reason: str) -> None:
        self.scope = scope
        self.reason = reason
        super().__init__(f"invalid scope {scope!r}: {reason}")


@dataclass(frozen=True, slots=True)
class ResourceScope:
    """One SMART resource scope, always held in v2 form.

    ``permissions`` is a non-empty subsequence of ``cruds``; ``restrictions`` is the
    parsed ``?param=value`` query (empty when the scope is unrestricted) and ``query``
    the same text as written, so the scope prints back exactly.
    """

    context: str
    resource_type: str
    permissions: str
    query: str = ""
    restrictions: tuple[tuple[str, str], ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        text = f"{self.context}/{self.resource_type}.{self.permissions}"
        return f"{text}?{self.query}" if self.query else text

    def allows(self, resource_type: str, interaction: str) -> bool:
        """True when this scope grants ``interaction`` on ``resource_type``."""
        return interaction in self.permissions and self.resource_type in ("*", resource_type)

    def covers(self, other: ResourceScope) -> bool:
        """True when everything ``other`` grants is granted by this scope.

        Used to check that a requested scope is within a client's allowed scopes: same
        context, same or wildcard type, a superset of permissions, and a restriction that
        is absent here or also present (possibly with more conditions) on ``other``.
        """
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and all(p in self.permissions for p in other.permissions)
            and set(self.restrictions) <= set(other.restrictions)
        )


def parse_scope(word: str) -> ResourceScope | str:
    """Parse one scope word: a ``ResourceScope``, or the word itself for the other kinds."""
    if not word:
        raise ScopeError(word, "empty scope")
    if any(ch.isspace() for ch in word):
        raise ScopeError(word, "a scope cannot contain white space")
    if word in IDENTITY_SCOPES or _SERVICE_SCOPE.fullmatch(word):
        return word
    match = _RESOURCE_SCOPE.fullmatch(word)
    if match is None:
        raise ScopeError(
            word,
            "not a SMART scope (context/Type.permissions), a launch or identity scope "
            f"({', '.join(sorted(IDENTITY_SCOPES))}) or a service scope (service:permission)",
        )
    context, res_type, perms, query = match.group("context", "type", "perms", "query")
    if context not in CONTEXTS:
        if context.startswith("launch"):
            raise ScopeError(word, "unknown launch context "
                                   "(expected launch/patient or launch/encounter)")
        raise ScopeError(word, f"unknown context {context!r} (expected patient, user or system)")
    if res_type != "*":
        if not _TYPE_NAME.fullmatch(res_type):
            raise ScopeError(word, f"{res_type!r} is not a resource type name or '*'")
        if res_type not in R4_RESOURCE_TYPES:
            raise ScopeError(word, f"{res_type!r} is not a FHIR R4 resource type")
    if perms is None:
        raise ScopeError(word, "missing '.permissions' after the resource type (e.g. '.rs')")
    if perms in V1_PERMISSIONS:
        if query is not None:
            raise ScopeError(word, "a query restriction needs v2 permissions (e.g. '.rs?...')")
        return ResourceScope(context, res_type, V1_PERMISSIONS[perms])
    if not perms:
        raise ScopeError(word, "empty permissions (expected letters from 'cruds')")
    if not _V2_PERMISSIONS.fullmatch(perms):
        unknown = sorted(set(perms) - set(INTERACTIONS))
        if unknown:
            raise ScopeError(
                word,
                f"unknown permission {''.join(unknown)!r}: v2 permissions are c, r, u, d, s "
                "and v1 ones are read, write, *",
            )
        raise ScopeError(
            word, f"permissions {perms!r} must appear at most once each, in the order c r u d s"
        )
    if query is None:
        return ResourceScope(context, res_type, perms)
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = []
    if not pairs or any(not k or not v for k, v in pairs):
        raise ScopeError(word, f"query restriction {query!r} is not param=value[&...]")
    return ResourceScope(context, res_type, perms, query, tuple(pairs))


class ScopeSet:
    """The scopes of one token, ready to answer "may it do interaction X on type Y?".

    Scopes combine with OR, as SMART v2 says: an interaction is allowed when at least one
    resource scope grants it. ``grants`` returns those scopes so that later rules (patient
    compartment, query restrictions) can look at their context and restrictions.
    """

    __slots__ = ("_cache", "other", "resource_scopes")

    def __init__(self, resource_scopes: Iterable[ResourceScope] = (),
                 other: Iterable[str] = ()) -> None:
        self.resource_scopes: tuple[ResourceScope, ...] = tuple(dict.fromkeys(resource_scopes))
        self.other: frozenset[str] = frozenset(other)
        self._cache: dict[tuple[str, str], tuple[ResourceScope, ...]] = {}

    @classmethod
    def parse(cls, scopes: str | Iterable[str]) -> ScopeSet:
        """Parse a space-separated scope string (or words); raises ``ScopeError``."""
        words = scopes.split() if isinstance(scopes, str) else list(scopes)
        resource: list[ResourceScope] = []
        other: list[str] = []
        for word in words:
            parsed = parse_scope(word)
            if isinstance(parsed, ResourceScope):
                resource.append(parsed)
            else:
                other.append(parsed)
        return cls(resource, other)

    def grants(self, resource_type: str, interaction: str) -> tuple[ResourceScope, ...]:
        """The resource scopes granting ``interaction`` (one of c r u d s) on the type."""
        key = (resource_type, interaction)
        found = self._cache.get(key)
        if found is None:
            if interaction not in INTERACTIONS or len(interaction) != 1:
                raise ValueError(f"interaction must be one of c, r, u, d, s, not {interaction!r}")
            found = tuple(s for s in self.resource_scopes if s.allows(resource_type, interaction))
            if len(self._cache) < 512:
                self._cache[key] = found
        return found

    def allows(self, resource_type: str, interaction: str) -> bool:
        """True when some scope grants ``interaction`` (c r u d s) on ``resource_type``."""
        return bool(self.grants(resource_type, interaction))

    def restrictions(self, resource_type: str,
                     interaction: str) -> tuple[tuple[tuple[str, str], ...], ...] | None:
        """The query restrictions that apply, or None when some granting scope has none.

        SMART v2 scopes combine with OR, so one unrestricted grant makes the others moot;
        otherwise the result lists each granting scope's restriction (any may be met).
        An interaction no scope grants yields an empty tuple.
        """
        granting = self.grants(resource_type, interaction)
        if any(not s.restrictions for s in granting):
            return None
        return tuple(s.restrictions for s in granting)

    def has(self, scope: str) -> bool:
        """True when a launch, identity or service scope (e.g. ``openid``) is present."""
        return scope in self.other

    def missing_from(self, allowed: ScopeSet) -> list[str]:
        """The scopes of this set that ``allowed`` does not cover (empty: a subset)."""
        missing = [str(s) for s in self.resource_scopes
                   if not any(a.covers(s) for a in allowed.resource_scopes)]
        missing += sorted(self.other - allowed.other)
        return missing

    def issubset(self, allowed: ScopeSet) -> bool:
        return not self.missing_from(allowed)

    def __iter__(self) -> Iterator[str]:
        yield from (str(s) for s in self.resource_scopes)
        yield from sorted(self.other)

    def __len__(self) -> int:
        return len(self.resource_scopes) + len(self.other)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScopeSet):
            return NotImplemented
        return (set(self.resource_scopes) == set(other.resource_scopes)
                and self.other == other.other)

    def __hash__(self) -> int:
        return hash((frozenset(self.resource_scopes), self.other))

    def __str__(self) -> str:
        """The scopes as a space-separated string, resource scopes in v2 form."""
        return " ".join(self)

    def __repr__(self) -> str:
        return f"ScopeSet({str(self)!r})"
