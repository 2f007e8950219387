"""Emergency staff mobilization (Plan Blanc): staff directory, plans of requests
"role x unit x quota x deadline", campaigns asked in waves over SMS, phone and e-mail,
answers and arrival times, stand-downs, and a live board; exercises kept apart.

What the platform's assembly (``app.py``, ``cli.py``) and operators' scripts may use;
the modules behind these names are free to change.
"""

from hygie.mobilization.answers import ParsedAnswer, parse_answer
from hygie.mobilization.demo import seed_demo
from hygie.mobilization.directory import ImportReport
from hygie.mobilization.engine import MobilizationService, Options, confirmation_word
from hygie.mobilization.errors import (
    CampaignClosed,
    ConfirmationRequired,
    InvalidInput,
    InvalidPlan,
    MobilizationError,
    NotAllowed,
    NotFound,
)
from hygie.mobilization.model import (
    Arrival,
    Campaign,
    ContactState,
    Level,
    Meaning,
    Plan,
    RequestBoard,
    RequestSpec,
    Staff,
    Templates,
)
from hygie.mobilization.plans import parse_plan, plan_to_dict, read_plan_file

__all__ = [
    "Arrival",
    "Campaign",
    "CampaignClosed",
    "ConfirmationRequired",
    "ContactState",
    "ImportReport",
    "InvalidInput",
    "InvalidPlan",
    "Level",
    "Meaning",
    "MobilizationError",
    "MobilizationService",
    "NotAllowed",
    "NotFound",
    "Options",
    "ParsedAnswer",
    "Plan",
    "RequestBoard",
    "RequestSpec",
    "Staff",
    "Templates",
    "confirmation_word",
    "parse_answer",
    "parse_plan",
    "plan_to_dict",
    "read_plan_file",
    "seed_demo",
]
