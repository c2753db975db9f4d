"""The sObjects the sandbox serves: their fields, types, lengths and write rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from include.sandbox.salesforce.ids import KEY_PREFIXES

# Field types that hold text and compare case-insensitively in SOQL.
TEXT_TYPES = frozenset({"string", "email", "phone", "picklist", "textarea", "url"})
ID_TYPES = frozenset({"id", "reference"})
NUMBER_TYPES = frozenset({"double", "int", "currency", "percent"})


@dataclass(frozen=True)
class FieldDef:
    """One sObject field as ``describe`` reports it, plus the sandbox's write rules."""

    name: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    required: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    default: object = None
    label: str = ""

    @property
    def is_text(self) -> bool:
        """True for types that compare case-insensitively (string, email, picklist, ...)."""
        return self.type in TEXT_TYPES

    @property
    def sql_type(self) -> str:
        """The SQLite column declaration of the field."""
        if self.type in ("boolean", "int"):
            return "INTEGER"
        if self.type in NUMBER_TYPES:
            return "REAL"
        return "TEXT"


@dataclass
class SObjectDef:
    """One sObject: its name, key prefix and fields in describe order."""

    name: str
    fields: list[FieldDef]
    label: str = ""
    by_lower_name: dict[str, FieldDef] = field(init=False, repr=False)
    relationships: dict[str, FieldDef] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_lower_name = {f.name.lower(): f for f in self.fields}
        self.relationships = {
            f.relationship_name.lower(): f for f in self.fields if f.relationship_name
        }

    @property
    def key_prefix(self) -> str:
        """The three-character Id prefix of the object."""
        return KEY_PREFIXES[self.name]

    def field(self, name: str) -> FieldDef | None:
        """Return the field called ``name`` (any letter case), or None."""
        return self.by_lower_name.get(name.lower())


def _s(name: str, length: int, **kwargs: object) -> FieldDef:
    return FieldDef(name, "string", length, **kwargs)  # type: ignore[arg-type]


def _ref(name: str, target: str, **kwargs: object) -> FieldDef:
    relationship = name[:-2] if name.endswith("Id") else name
    return FieldDef(
        name, "reference", 18, reference_to=target, relationship_name=relationship, **kwargs
    )  # type: ignore[arg-type]


def _bool(name: str, **kwargs: object) -> FieldDef:
    return FieldDef(name, "boolean", nillable=False, default=False, **kwargs)  # type: ignore[arg-type]


def _system_fields(sobject: str) -> list[FieldDef]:
    read_only = {"createable": False, "updateable": False}
    return [
        FieldDef("Id", "id", 18, nillable=False, **read_only),  # type: ignore[arg-type]
        _bool("IsDeleted", **read_only),
        _ref("MasterRecordId", sobject, **read_only),
    ]


def _audit_fields() -> list[FieldDef]:
    read_only = {"createable": False, "updateable": False, "nillable": False}
    return [
        FieldDef("CreatedDate", "datetime", **read_only),  # type: ignore[arg-type]
        FieldDef("LastModifiedDate", "datetime", **read_only),  # type: ignore[arg-type]
        FieldDef("SystemModstamp", "datetime", **read_only),  # type: ignore[arg-type]
    ]


_READ_ONLY = {"createable": False, "updateable": False}

ACCOUNT = SObjectDef(
    "Account",
    [
        *_system_fields("Account"),
        _s("Name", 255, nillable=False, required=True),
        FieldDef("Type", "picklist", 255),
        FieldDef("Industry", "picklist", 255),
        _ref("ParentId", "Account"),
        _s("BillingCity", 40),
        _s("BillingState", 80),
        _s("BillingCountry", 80),
        FieldDef("Phone", "phone", 40),
        FieldDef("Website", "url", 255),
        FieldDef("NumberOfEmployees", "int"),
        FieldDef("AnnualRevenue", "currency"),
        FieldDef("Description", "textarea", 32000),
        *_audit_fields(),
    ],
    label="Account",
)

CONTACT = SObjectDef(
    "Contact",
    [
        *_system_fields("Contact"),
        _ref("AccountId", "Account"),
        FieldDef("Salutation", "picklist", 40),
        _s("FirstName", 40),
        _s("LastName", 80, nillable=False, required=True),
        _s("Name", 121, nillable=False, **_READ_ONLY),  # type: ignore[arg-type]
        _s("Title", 128),
        _s("Department", 80),
        FieldDef("Email", "email", 80),
        FieldDef("Phone", "phone", 40),
        FieldDef("MobilePhone", "phone", 40),
        FieldDef("MailingStreet", "textarea", 255),
        _s("MailingCity", 40),
        _s("MailingState", 80),
        _s("MailingPostalCode", 20),
        _s("MailingCountry", 80),
        FieldDef("LeadSource", "picklist", 255),
        FieldDef("Birthdate", "date"),
        FieldDef("Description", "textarea", 32000),
        _bool("HasOptedOutOfEmail"),
        _bool("DoNotCall"),
        _bool("IsEmailBounced"),
        FieldDef("EmailBouncedDate", "datetime"),
        _s("EmailBouncedReason", 255),
        FieldDef("LastActivityDate", "date", **_READ_ONLY),  # type: ignore[arg-type]
        *_audit_fields(),
        _s("Cerkl_Subscriber_Id__c", 255, external_id=True, unique=True),
        _bool("Cerkl_Unsubscribe__c"),
        FieldDef("Engagement_Score__c", "double"),
        _s("Interest_1__c", 255),
        _s("Interest_2__c", 255),
        _s("Interest_3__c", 255),
        _s("Interest_4__c", 255),
        _s("Interest_5__c", 255),
    ],
    label="Contact",
)

LEAD = SObjectDef(
    "Lead",
    [
        *_system_fields("Lead"),
        FieldDef("Salutation", "picklist", 40),
        _s("FirstName", 40),
        _s("LastName", 80, nillable=False, required=True),
        _s("Name", 121, nillable=False, **_READ_ONLY),  # type: ignore[arg-type]
        _s("Company", 255, nillable=False, required=True),
        _s("Title", 128),
        FieldDef("Email", "email", 80),
        FieldDef("Phone", "phone", 40),
        _s("City", 40),
        _s("Country", 80),
        FieldDef("Status", "picklist", 255, nillable=False, default="Open - Not Contacted"),
        FieldDef("LeadSource", "picklist", 255),
        _bool("HasOptedOutOfEmail"),
        _bool("IsConverted", **_READ_ONLY),
        _ref("ConvertedContactId", "Contact", **_READ_ONLY),
        *_audit_fields(),
    ],
    label="Lead",
)

CAMPAIGN = SObjectDef(
    "Campaign",
    [
        *_system_fields("Campaign"),
        _s("Name", 80, nillable=False, required=True),
        _ref("ParentId", "Campaign"),
        FieldDef("Type", "picklist", 255),
        FieldDef("Status", "picklist", 255),
        FieldDef("StartDate", "date"),
        FieldDef("EndDate", "date"),
        _bool("IsActive"),
        FieldDef("Description", "textarea", 32000),
        *_audit_fields(),
    ],
    label="Campaign",
)

CAMPAIGN_MEMBER = SObjectDef(
    "CampaignMember",
    [
        *_system_fields("CampaignMember"),
        _ref("CampaignId", "Campaign", nillable=False, updateable=False),
        _ref("ContactId", "Contact", updateable=False),
        _ref("LeadId", "Lead", updateable=False),
        FieldDef("Status", "picklist", 40, default="Sent"),
        _bool("HasResponded", **_READ_ONLY),
        FieldDef("FirstRespondedDate", "date", **_READ_ONLY),  # type: ignore[arg-type]
        FieldDef("Email", "email", 80, **_READ_ONLY),  # type: ignore[arg-type]
        _s("FirstName", 40, **_READ_ONLY),  # type: ignore[arg-type]
        _s("LastName", 80, **_READ_ONLY),  # type: ignore[arg-type]
        _bool("HasOptedOutOfEmail", **_READ_ONLY),
        *_audit_fields(),
    ],
    label="Campaign Member",
)

SOBJECTS: dict[str, SObjectDef] = {
    definition.name: definition
    for definition in (ACCOUNT, CONTACT, LEAD, CAMPAIGN, CAMPAIGN_MEMBER)
}
_SOBJECTS_LOWER = {name.lower(): definition for name, definition in SOBJECTS.items()}

# CampaignMember Status values that count as a response (HasResponded true).
RESPONDED_STATUSES = frozenset({"responded"})
# Person fields that CampaignMember copies, read-only, from its Contact or Lead.
PERSON_COPY_FIELDS = ("Email", "FirstName", "LastName", "HasOptedOutOfEmail")


def find_sobject(name: str) -> SObjectDef | None:
    """Return the sObject called ``name`` (any letter case), or None."""
    return _SOBJECTS_LOWER.get(name.lower())
