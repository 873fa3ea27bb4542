"""Request and response schemas, one module per resource. Every request model forbids
unknown fields and bounds every string; money is a decimal string, never a JSON number.
The command bodies and field types are declared in the application (`application.commands`,
`application.fields`) and re-exported here for the routes."""

from ...application.commands import CommandBody, OverrideIn, ReceivableCreate
from ...application.fields import (
    AwareInstant,
    Currency,
    Day,
    DayOrInstant,
    Identifier,
    Instant,
    Money,
    ShortText,
    Strict,
    Text,
)
from .audit import (
    AuditBreakOut,
    AuditVerifyOut,
    CheckpointDocument,
    CheckpointOut,
)
from .common import IF_MATCH, inline_json_schema
from .customers import (
    ContactLogEntry,
    ContactLogPage,
    ContactPersonIn,
    ContactsIn,
    CreditRecordOut,
    CurrencyFigures,
    CustomerCreate,
    CustomerHoldIn,
    CustomerName,
    CustomerPage,
    CustomerPatch,
    CustomerPublic,
    CustomerReleaseHoldIn,
    CustomerSummary,
    Language,
    MoneyIn,
    MoneyOut,
    NoteOut,
    Rating,
    RevisitCreate,
    RevisitOut,
    Tier,
    TimeZone,
)
from .errors import (
    AllowedAction,
    FieldErrorOut,
    ProblemDetails,
)
from .notifications import (
    NotificationOut,
    NotificationPage,
)
from .receivables import (
    BreachOut,
    COMMAND_RESPONSES,
    ContactCheckOut,
    ContactFindingOut,
    ContactRecordedOut,
    DisputeOut,
    HistoryEntry,
    HoldOut,
    InstallmentOut,
    InstallmentPlanOut,
    InstallmentProposalOut,
    LimitationInterruptionOut,
    LimitationOut,
    PromiseOut,
    ReceivablePage,
    ReceivablePublic,
    BalanceBreakdownOut,
    ChargesOut,
    ChargesWaiverOut,
    ReceivableSummary,
    OpenComplaintOut,
    WriteOffRequestOut,
)
from .time import (
    ClockAdvance,
    ClockOut,
    PolicyOut,
    PolicyVersionOut,
    TickOut,
)
from .views import (
    AgingBucketOut,
    AgingGroupOut,
    AgingReportOut,
    AgingTotalOut,
    KpiBlockOut,
    KpiCollectorOut,
    KpisOut,
    WorklistItemOut,
    WorklistOut,
)
