"""Clinical concepts the generator draws from, with their codes in standard systems.

Codes are facts of the terminologies: ICD-10 (WHO), SNOMED CT, LOINC, UCUM, ATC and
the HL7 Terminology (THO) code systems bound by FHIR R4. Where no standard code fits
(the kind of a hospital unit, a French diploma), a local system documented in
``identifiers`` is used. French texts go in ``CodeableConcept.text`` for display.
"""

from __future__ import annotations

from typing import NamedTuple

from .datatypes import THO
from .identifiers import DIPLOMA_SYSTEM

LOCATION_PHYSICAL_TYPE = THO + "location-physical-type"
BED_STATUS = THO + "v2-0116"
ROLE_CODE = THO + "v3-RoleCode"
ACT_CODE = THO + "v3-ActCode"
PARTICIPATION_TYPE = THO + "v3-ParticipationType"
OBSERVATION_CATEGORY = THO + "observation-category"
INTERPRETATION = THO + "v3-ObservationInterpretation"
CONDITION_CLINICAL = THO + "condition-clinical"
CONDITION_VERIFICATION = THO + "condition-ver-status"
CONDITION_CATEGORY = THO + "condition-category"
ALLERGY_CLINICAL = THO + "allergyintolerance-clinical"
ALLERGY_VERIFICATION = THO + "allergyintolerance-verification"
DIAGNOSIS_ROLE = THO + "diagnosis-role"
ADMIT_SOURCE = THO + "admit-source"
DISCHARGE_DISPOSITION = THO + "discharge-disposition"
PRACTITIONER_ROLE = THO + "practitioner-role"
ORGANIZATION_TYPE = THO + "organization-type"
IDENTIFIER_TYPE = THO + "v2-0203"
DEGREE = THO + "v2-0360/2.7"

#: Base of the R4 vital-signs profiles (https://hl7.org/fhir/R4/observation-vitalsigns.html).
VITALSIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"


class UnitKind(NamedTuple):
    """A kind of hospital unit: local code, French name, v3 RoleCode, room prefix."""

    code: str
    name: str
    role_code: str
    role_display: str
    beds_per_room: int


UNIT_KINDS: dict[str, UnitKind] = {
    k.code: k
    for k in (
        UnitKind("icu", "Réanimation", "ICU", "Intensive care unit", 1),
        UnitKind("emergency", "Urgences", "ER", "Emergency room", 1),
        UnitKind("internal-medicine", "Médecine interne", "HU", "Hospital unit", 2),
        UnitKind("cardiology", "Cardiologie", "HU", "Hospital unit", 2),
        UnitKind("pneumology", "Pneumologie", "CHEST", "Chest unit", 2),
        UnitKind("infectious-diseases", "Maladies infectieuses", "HU", "Hospital unit", 1),
        UnitKind("surgery", "Chirurgie", "HU", "Hospital unit", 2),
        UnitKind("paediatrics", "Pédiatrie", "PEDU", "Pediatric unit", 1),
        UnitKind("maternity", "Maternité", "HU", "Hospital unit", 1),
        UnitKind("geriatrics", "Gériatrie", "HU", "Hospital unit", 2),
        UnitKind("radiology", "Imagerie médicale", "RADDX",
                 "Radiology diagnostics or therapeutics unit", 0),
    )
}


class Qualification(NamedTuple):
    """A diploma: code system, code, display, French text."""

    system: str
    code: str
    display: str
    text: str


class StaffRole(NamedTuple):
    """A job in a unit: SNOMED CT occupation, R4 practitioner-role code, French label.

    ``category`` is the R4 practitioner-role code (``doctor``, ``nurse``) when one
    applies, else None; ``diplomas`` are the qualifications a holder has.
    """

    key: str
    snomed: str
    display: str
    category: str | None
    label: str
    diplomas: tuple[Qualification, ...]


_MD = Qualification(DEGREE, "MD", "Doctor of Medicine", "Diplôme d'État de docteur en médecine")
_RN = Qualification(DEGREE, "RN", "Registered Nurse", "Diplôme d'État d'infirmier")


def _diploma(code: str, text: str) -> Qualification:
    """A French diploma in the local diploma system (no standard code exists)."""
    return Qualification(DIPLOMA_SYSTEM, code, text, text)


STAFF_ROLES: dict[str, StaffRole] = {
    r.key: r
    for r in (
        StaffRole("anaesthetist", "88189002", "Anesthesiologist", "doctor",
                  "Médecin anesthésiste-réanimateur",
                  (_MD, _diploma("DES-MAR", "DES d'anesthésie-réanimation"))),
        StaffRole("intensivist", "309338004", "Intensive care specialist", "doctor",
                  "Médecin intensiviste-réanimateur",
                  (_MD, _diploma("DES-MIR", "DES de médecine intensive-réanimation"))),
        StaffRole("emergency-physician", "309294001", "Accident and Emergency doctor",
                  "doctor", "Médecin urgentiste",
                  (_MD, _diploma("DES-MU", "DES de médecine d'urgence"))),
        StaffRole("internist", "39677007", "Internal medicine specialist", "doctor",
                  "Médecin interniste", (_MD, _diploma("DES-MIN", "DES de médecine interne"))),
        StaffRole("cardiologist", "17561000", "Cardiologist", "doctor", "Cardiologue",
                  (_MD, _diploma("DES-CAR", "DES de médecine cardiovasculaire"))),
        StaffRole("pulmonologist", "41672002", "Respiratory physician", "doctor",
                  "Pneumologue", (_MD, _diploma("DES-PNE", "DES de pneumologie"))),
        StaffRole("infectiologist", "76899008", "Infectious diseases physician", "doctor",
                  "Infectiologue",
                  (_MD, _diploma("DES-MIT", "DES de maladies infectieuses et tropicales"))),
        StaffRole("surgeon", "78703002", "General surgeon", "doctor", "Chirurgien",
                  (_MD, _diploma("DES-CVD", "DES de chirurgie viscérale et digestive"))),
        StaffRole("paediatrician", "82296001", "Pediatrician", "doctor", "Pédiatre",
                  (_MD, _diploma("DES-PED", "DES de pédiatrie"))),
        StaffRole("obstetrician", "309367003", "Obstetrician and gynecologist", "doctor",
                  "Gynécologue-obstétricien",
                  (_MD, _diploma("DES-GO", "DES de gynécologie obstétrique"))),
        StaffRole("geriatrician", "90655003", "Care of the elderly physician", "doctor",
                  "Gériatre", (_MD, _diploma("DES-GER", "DES de gériatrie"))),
        StaffRole("radiologist", "66862007", "Radiologist", "doctor", "Radiologue",
                  (_MD, _diploma("DES-RAD", "DES de radiologie et imagerie médicale"))),
        StaffRole("icu-nurse", "224547003", "Intensive therapy nurse", "nurse",
                  "Infirmier de réanimation", (_RN,)),
        StaffRole("emergency-nurse", "224537001", "Accident and Emergency nurse", "nurse",
                  "Infirmier des urgences", (_RN,)),
        StaffRole("nurse", "224535009", "Registered nurse", "nurse", "Infirmier", (_RN,)),
        StaffRole("paediatric-nurse", "224562001", "Pediatric nurse", "nurse",
                  "Infirmier puériculteur",
                  (_RN, _diploma("DEP", "Diplôme d'État de puéricultrice"))),
        StaffRole("nursing-assistant", "224576000", "Nursing assistant", None, "Aide-soignant",
                  (_diploma("DEAS", "Diplôme d'État d'aide-soignant"),)),
        StaffRole("midwife", "75271001", "MW - Midwife", None, "Sage-femme",
                  (_diploma("DESF", "Diplôme d'État de sage-femme"),)),
        StaffRole("radiographer", "159016003", "Medical radiographer", None,
                  "Manipulateur en électroradiologie médicale",
                  (_diploma("DEMERM", "Diplôme d'État de manipulateur d'électroradiologie "
                          "médicale"),)),
    )
}


class Diagnosis(NamedTuple):
    """A condition: ICD-10 code and title, SNOMED CT code and term (or None), French text."""

    key: str
    icd10: str
    icd10_display: str
    snomed: str | None
    snomed_display: str | None
    text: str


DIAGNOSES: dict[str, Diagnosis] = {
    d.key: d
    for d in (
        Diagnosis("covid-19", "U07.1", "COVID-19, virus identified", "840539006",
                  "Disease caused by severe acute respiratory syndrome coronavirus 2",
                  "COVID-19"),
        Diagnosis("ards", "J80", "Acute respiratory distress syndrome", "67782005",
                  "Acute respiratory distress syndrome", "Syndrome de détresse respiratoire aiguë"),
        Diagnosis("pneumonia", "J18.9", "Pneumonia, unspecified", "233604007", "Pneumonia",
                  "Pneumopathie"),
        Diagnosis("influenza", "J11.1",
                  "Influenza with other respiratory manifestations, virus not identified",
                  "6142004", "Influenza", "Grippe"),
        Diagnosis("hypertension", "I10", "Essential (primary) hypertension", "38341003",
                  "Hypertensive disorder, systemic arterial", "Hypertension artérielle"),
        Diagnosis("diabetes", "E11.9", "Type 2 diabetes mellitus without complications",
                  "44054006", "Diabetes mellitus type 2", "Diabète de type 2"),
        Diagnosis("copd", "J44.9", "Chronic obstructive pulmonary disease, unspecified",
                  "13645005", "Chronic obstructive lung disease",
                  "Bronchopneumopathie chronique obstructive"),
        Diagnosis("asthma", "J45.9", "Asthma, unspecified", "195967001", "Asthma", "Asthme"),
        Diagnosis("obesity", "E66.9", "Obesity, unspecified", "414916001", "Obesity",
                  "Obésité"),
        Diagnosis("ckd", "N18.9", "Chronic kidney disease, unspecified", "709044004",
                  "Chronic kidney disease", "Insuffisance rénale chronique"),
        Diagnosis("atrial-fibrillation", "I48.9",
                  "Atrial fibrillation and atrial flutter, unspecified", "49436004",
                  "Atrial fibrillation", "Fibrillation atriale"),
        Diagnosis("heart-failure", "I50.9", "Heart failure, unspecified", "84114007",
                  "Heart failure", "Insuffisance cardiaque"),
        Diagnosis("myocardial-infarction", "I21.9", "Acute myocardial infarction, unspecified",
                  "22298006", "Myocardial infarction", "Infarctus du myocarde"),
        Diagnosis("stroke", "I63.9", "Cerebral infarction, unspecified", "422504002",
                  "Ischemic stroke", "Accident vasculaire cérébral ischémique"),
        Diagnosis("pulmonary-embolism", "I26.9",
                  "Pulmonary embolism without mention of acute cor pulmonale", "59282003",
                  "Pulmonary embolism", "Embolie pulmonaire"),
        Diagnosis("sepsis", "A41.9", "Sepsis, unspecified", "91302008", "Sepsis", "Sepsis"),
        Diagnosis("appendicitis", "K35.8", "Acute appendicitis, other and unspecified",
                  "74400008", "Appendicitis", "Appendicite aiguë"),
        Diagnosis("hip-fracture", "S72.0", "Fracture of neck of femur", "359817006",
                  "Closed fracture of hip", "Fracture du col du fémur"),
        Diagnosis("bronchiolitis", "J21.9", "Acute bronchiolitis, unspecified", None, None,
                  "Bronchiolite aiguë"),
        Diagnosis("delivery", "O80.0", "Spontaneous vertex delivery", None, None,
                  "Accouchement spontané par voie basse"),
        Diagnosis("chest-pain", "R07.4", "Chest pain, unspecified", "29857009", "Chest pain",
                  "Douleur thoracique"),
        Diagnosis("abdominal-pain", "R10.4", "Other and unspecified abdominal pain",
                  "21522001", "Abdominal pain", "Douleur abdominale"),
        Diagnosis("wrist-fracture", "S52.5", "Fracture of lower end of radius", None, None,
                  "Fracture du poignet"),
        Diagnosis("syncope", "R55", "Syncope and collapse", "271594007", "Syncope",
                  "Malaise avec perte de connaissance"),
        Diagnosis("urinary-infection", "N39.0", "Urinary tract infection, site not specified",
                  "68566005", "Urinary tract infectious disease", "Infection urinaire"),
        Diagnosis("gastroenteritis", "A09.9",
                  "Gastroenteritis and colitis of unspecified origin", "25374005",
                  "Gastroenteritis", "Gastro-entérite"),
        Diagnosis("dehydration", "E86", "Volume depletion", "34095006", "Dehydration",
                  "Déshydratation"),
    )
}


#: Diagnoses that last: recorded once on the problem list, then referred to again.
CHRONIC_DIAGNOSES = frozenset({
    "hypertension", "diabetes", "obesity", "asthma", "copd", "ckd", "atrial-fibrillation",
    "heart-failure",
})


class VitalSign(NamedTuple):
    """A vital sign of the R4 profile: LOINC code(s), UCUM unit, specific profile."""

    key: str
    loinc: tuple[tuple[str, str], ...]
    text: str
    unit: str
    ucum: str
    profile: str


VITAL_SIGNS: dict[str, VitalSign] = {
    v.key: v
    for v in (
        VitalSign("heart-rate", (("8867-4", "Heart rate"),), "Fréquence cardiaque",
                  "beats/minute", "/min", "http://hl7.org/fhir/StructureDefinition/heartrate"),
        VitalSign("spo2", (("2708-6", "Oxygen saturation in Arterial blood"),
                           ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry")),
                  "Saturation en oxygène (SpO2)", "%", "%",
                  "http://hl7.org/fhir/StructureDefinition/oxygensat"),
        VitalSign("respiratory-rate", (("9279-1", "Respiratory rate"),),
                  "Fréquence respiratoire", "breaths/minute", "/min",
                  "http://hl7.org/fhir/StructureDefinition/resprate"),
        VitalSign("temperature", (("8310-5", "Body temperature"),), "Température", "°C",
                  "Cel", "http://hl7.org/fhir/StructureDefinition/bodytemp"),
        VitalSign("blood-pressure", (("85354-9", "Blood pressure panel with all children "
                                                 "optional"),),
                  "Pression artérielle", "mmHg", "mm[Hg]",
                  "http://hl7.org/fhir/StructureDefinition/bp"),
        VitalSign("weight", (("29463-7", "Body weight"),), "Poids", "kg", "kg",
                  "http://hl7.org/fhir/StructureDefinition/bodyweight"),
    )
}

SYSTOLIC = ("8480-6", "Systolic blood pressure")
DIASTOLIC = ("8462-4", "Diastolic blood pressure")


class LabTest(NamedTuple):
    """A laboratory test: LOINC code and name, UCUM unit, reference range, decimals."""

    key: str
    loinc: str
    display: str
    text: str
    unit: str
    ucum: str
    low: float
    high: float
    decimals: int


LAB_TESTS: dict[str, LabTest] = {
    t.key: t
    for t in (
        LabTest("crp", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma",
                "Protéine C réactive", "mg/L", "mg/L", 0.0, 5.0, 1),
        LabTest("hemoglobin", "718-7", "Hemoglobin [Mass/volume] in Blood", "Hémoglobine",
                "g/dL", "g/dL", 12.0, 17.0, 1),
        LabTest("leukocytes", "6690-2", "Leukocytes [#/volume] in Blood by Automated count",
                "Leucocytes", "G/L", "10*9/L", 4.0, 10.0, 1),
        LabTest("platelets", "777-3", "Platelets [#/volume] in Blood by Automated count",
                "Plaquettes", "G/L", "10*9/L", 150.0, 400.0, 0),
        LabTest("creatinine", "14682-9", "Creatinine [Moles/volume] in Serum or Plasma",
                "Créatinine", "µmol/L", "umol/L", 45.0, 104.0, 0),
        LabTest("sodium", "2951-2", "Sodium [Moles/volume] in Serum or Plasma", "Sodium",
                "mmol/L", "mmol/L", 136.0, 145.0, 0),
        LabTest("potassium", "2823-3", "Potassium [Moles/volume] in Serum or Plasma",
                "Potassium", "mmol/L", "mmol/L", 3.5, 5.0, 1),
        LabTest("glucose", "14749-6", "Glucose [Moles/volume] in Serum or Plasma",
                "Glycémie", "mmol/L", "mmol/L", 3.9, 6.1, 1),
        LabTest("lactate", "2524-7", "Lactate [Moles/volume] in Serum or Plasma", "Lactates",
                "mmol/L", "mmol/L", 0.5, 2.2, 1),
        LabTest("nt-probnp", "33762-6",
                "Natriuretic peptide.B prohormone N-Terminal [Mass/volume] in Serum or Plasma",
                "NT-proBNP", "pg/mL", "pg/mL", 0.0, 125.0, 0),
    )
}

#: LOINC test for SARS-CoV-2 RNA by RT-PCR, and its SNOMED CT answers.
SARS_COV_2_PCR = ("94500-6", "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory specimen "
                  "by NAA with probe detection")
DETECTED = ("260373001", "Detected")
NOT_DETECTED = ("260415000", "Not detected")


class Medication(NamedTuple):
    """A prescribed drug: ATC code and INN, French directions, route, dose, times a day."""

    key: str
    atc: str
    display: str
    text: str
    directions: str
    route: tuple[str, str]
    dose: float
    unit: str
    ucum: str
    per_day: int


_ORAL = ("26643006", "Oral route")
_IV = ("47625008", "Intravenous route")
_SC = ("34206005", "Subcutaneous route")
_INHALED = ("447694001", "Respiratory tract route")

MEDICATIONS: dict[str, Medication] = {
    m.key: m
    for m in (
        Medication("paracetamol", "N02BE01", "paracetamol", "Paracétamol 1 g",
                   "1 g toutes les 6 heures si douleur ou fièvre", _ORAL, 1, "g", "g", 4),
        Medication("enoxaparin", "B01AB05", "enoxaparin", "Énoxaparine 4 000 UI",
                   "4 000 UI en sous-cutané une fois par jour", _SC, 0.4, "mL", "mL", 1),
        Medication("dexamethasone", "H02AB02", "dexamethasone", "Dexaméthasone 6 mg",
                   "6 mg par jour pendant 10 jours", _IV, 6, "mg", "mg", 1),
        Medication("furosemide", "C03CA01", "furosemide", "Furosémide 40 mg",
                   "40 mg le matin", _ORAL, 40, "mg", "mg", 1),
        Medication("bisoprolol", "C07AB07", "bisoprolol", "Bisoprolol 2,5 mg",
                   "2,5 mg le matin", _ORAL, 2.5, "mg", "mg", 1),
        Medication("ramipril", "C09AA05", "ramipril", "Ramipril 5 mg",
                   "5 mg le matin", _ORAL, 5, "mg", "mg", 1),
        Medication("metformin", "A10BA02", "metformin", "Metformine 1 000 mg",
                   "1 000 mg matin et soir au cours des repas", _ORAL, 1000, "mg", "mg", 2),
        Medication("salbutamol", "R03AC02", "salbutamol", "Salbutamol 100 µg/dose",
                   "2 bouffées jusqu'à 4 fois par jour en cas de gêne", _INHALED, 200, "µg",
                   "ug", 4),
        Medication("amoxicillin-clavulanate", "J01CR02",
                   "amoxicillin and beta-lactamase inhibitor",
                   "Amoxicilline-acide clavulanique 1 g",
                   "1 g trois fois par jour pendant 7 jours", _ORAL, 1, "g", "g", 3),
        Medication("ceftriaxone", "J01DD04", "ceftriaxone", "Ceftriaxone 1 g",
                   "1 g par jour en intraveineuse", _IV, 1, "g", "g", 1),
        Medication("atorvastatin", "C10AA05", "atorvastatin", "Atorvastatine 40 mg",
                   "40 mg le soir", _ORAL, 40, "mg", "mg", 1),
        Medication("aspirin", "B01AC06", "acetylsalicylic acid", "Acide acétylsalicylique 75 mg",
                   "75 mg par jour", _ORAL, 75, "mg", "mg", 1),
    )
}


class Allergy(NamedTuple):
    """An allergy: SNOMED CT code and term, category, French text, usual reaction."""

    key: str
    snomed: str
    display: str
    category: str
    text: str
    reaction: tuple[str, str]


ALLERGIES: tuple[Allergy, ...] = (
    Allergy("penicillin", "91936005", "Allergy to penicillin", "medication",
            "Allergie à la pénicilline", ("271807003", "Eruption of skin")),
    Allergy("peanut", "91935009", "Allergy to peanuts", "food", "Allergie à l'arachide",
            ("39579001", "Anaphylaxis")),
    Allergy("latex", "300916003", "Latex allergy", "environment", "Allergie au latex",
            ("247472004", "Wheal")),
    Allergy("grass-pollen", "418689008", "Allergy to grass pollen", "environment",
            "Allergie aux pollens de graminées", ("76067001", "Sneezing")),
    Allergy("animal-dander", "232347008", "Dander (animal) allergy", "environment",
            "Allergie aux phanères d'animaux", ("49727002", "Cough")),
    Allergy("fish", "417532002", "Allergy to fish", "food", "Allergie au poisson",
            ("418290006", "Itching")),
)

#: Encounter types (SNOMED CT procedures).
ENCOUNTER_TYPES: dict[str, tuple[str, str, str]] = {
    "inpatient": ("32485007", "Hospital admission", "Hospitalisation"),
    "emergency": ("50849002", "Emergency room admission", "Passage aux urgences"),
    "icu": ("305351004", "Admission to intensive care unit", "Admission en réanimation"),
    "consultation": ("185389009", "Follow-up visit", "Consultation de suivi"),
}

#: Encounter classes (v3 ActCode).
ENCOUNTER_CLASSES: dict[str, tuple[str, str]] = {
    "inpatient": ("IMP", "inpatient encounter"),
    "emergency": ("EMER", "emergency"),
    "consultation": ("AMB", "ambulatory"),
}
