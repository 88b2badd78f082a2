"""Domain tags, taken from each source's own categories through fixed, committed tables — never
guessed by a model.

The tags are the `Domain` values of `envfactory.spec` (commerce, finance, travel, office, lifestyle,
academia, utilities):
- OpenAPI documents from APIs.guru carry `info.x-apisguru-categories`; `APIS_GURU_CATEGORIES` maps each
  category to a tag. Unknown categories map to nothing.
- AWS service models and Google discovery documents carry no categories, so the tables below name the
  services whose domain is not infrastructure; every other AWS or Google service is `utilities`
  (cloud infrastructure, developer tooling), a rule of the table rather than a per-service guess.
- APIs.guru documents without categories are tagged by provider through `APIS_GURU_PROVIDERS` (read
  from each API's own title and description when the table was written); providers in neither table
  get no tag and are never proposed.
- MCP servers from the reference set are in `MCP_SERVERS`; other servers and local docs get no tag
  unless their document says (OpenAPI categories).
- `PROVIDER_ALIASES` names hosts that belong to one organisation or product (Google's several hosts,
  NetBox's demo host), so counting distinct providers counts organisations, not hostnames.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

DOMAINS: tuple[str, ...] = ("commerce", "finance", "travel", "office", "lifestyle", "academia", "utilities")


def _table(groups: Mapping[str, str]) -> Mapping[str, str]:
    """Expand {domain: "name name ..."} into a read-only {name: domain}."""
    table: dict[str, str] = {}
    for domain, names in groups.items():
        assert domain in DOMAINS, domain
        for name in names.split():
            assert name not in table, f"{name} listed twice"
            table[name] = domain
    return MappingProxyType(table)


APIS_GURU_CATEGORIES: Mapping[str, str] = _table({
    "commerce": "ecommerce marketing customer_relation",
    "finance": "financial payment",
    "travel": "transport location",
    "office": "collaboration email project_management time_management forms enterprise messaging support",
    "lifestyle": "entertainment media social",
    "academia": "education open_data",
    "utilities": "cloud developer_tools tools analytics telecom security hosting iot search backend "
                 "monitoring storage machine_learning text",
})

# Uncategorised APIs.guru providers, by what the API serves (its title: "Catalog API", "TCGdex API", ...).
APIS_GURU_PROVIDERS: Mapping[str, str] = _table({
    "commerce": "vtex.local byautomata.io",
    "finance": "walletobjects.googleapis.com",
    "travel": "google.com regcheck.org.uk",
    "office": "nexmo.com xtrf.eu",
    "lifestyle": "tcgdex.net mineskin.org groundhog-day.com",
    "academia": "bethmardutho.org",
    "utilities": "javatpoint.com kumpeapps.com",
})

PROVIDER_ALIASES: Mapping[str, str] = MappingProxyType({
    "google.com": "google",
    "googleapis.com": "google",
    "walletobjects.googleapis.com": "google",
    "netboxdemo.com": "netbox.dev",
    "amazonaws.com": "aws",
})

AWS_SERVICES: Mapping[str, str] = _table({
    "commerce": "marketplace-agreement marketplace-catalog marketplace-deployment marketplace-discovery "
                "marketplace-entitlement marketplace-reporting marketplacecommerceanalytics meteringmarketplace "
                "personalize personalize-events personalize-runtime pinpoint pinpoint-email customer-profiles "
                "connectcampaigns connectcampaignsv2 supplychain b2bi rtbfabric partnercentral-selling "
                "partnercentral-marketing",
    "finance": "billing billingconductor budgets ce cur invoicing payments payment-cryptography "
               "payment-cryptography-data pricing pricing-plan-manager savingsplans taxsettings bcm-dashboards "
               "bcm-data-exports bcm-pricing-calculator bcm-recommended-actions cost-optimization-hub freetier "
               "applicationcostprofiler managedblockchain managedblockchain-query frauddetector",
    "travel": "geo-maps geo-places geo-routes location",
    "office": "ses sesv2 mailmanager workmail workmailmessageflow workdocs wickr chime chime-sdk-identity "
              "chime-sdk-media-pipelines chime-sdk-meetings chime-sdk-messaging chime-sdk-voice connect "
              "connectcases connectparticipant qbusiness qapps wisdom qconnect notificationscontacts "
              "socialmessaging sms-voice pinpoint-sms-voice pinpoint-sms-voice-v2 ssm-contacts",
    "lifestyle": "gamelift gameliftstreams ivs ivs-realtime ivschat",
    "academia": "braket omics groundstation mturk",
})

GOOGLE_APIS: Mapping[str, str] = _table({
    "commerce": "content merchantapi manufacturers adsense adsensehost adsenseplatform admob adexchangebuyer "
                "adexchangebuyer2 authorizedbuyersmarketplace realtimebidding displayvideo dfareporting "
                "doubleclickbidmanager doubleclicksearch searchads360 retail recommendationengine "
                "cloudcommerceprocurement cloudchannel reseller css localservices businessprofileperformance "
                "mybusinessaccountmanagement mybusinessbusinesscalls mybusinessbusinessinformation "
                "mybusinessnotifications mybusinessplaceactions mybusinessqanda mybusinessverifications "
                "readerrevenuesubscriptionlinking agenciesandbrands marketingplatformadmin curationpartners "
                "androidpublisher",
    "finance": "paymentsresellersubscription walletobjects cloudbilling billingbudgets",
    "travel": "travelimpactmodel places addressvalidation areainsights mybusinesslodging streetviewpublish "
              "playablelocations vectortile",
    "office": "calendar tasks gmail drive driveactivity drivelabels docs sheets slides forms people chat meet "
              "keep admin script groupssettings groupsmigration vault alertcenter licensing workspaceevents "
              "cloudsearch",
    "lifestyle": "youtube youtubeAnalytics youtubereporting blogger books fitness games gamesConfiguration "
                 "gamesManagement pollen airquality",
    "academia": "classroom genomics lifesciences libraryagent kgsearch factchecktools",
})

MCP_SERVERS: Mapping[str, str] = _table({
    "utilities": "memory time filesystem everything git",
})

INFRASTRUCTURE = "utilities"


def from_categories(categories: object, provider: str = "") -> list[str]:
    """Tags for APIs.guru categories (a list of strings); without any, the provider's table entry."""
    tags = (_ordered(APIS_GURU_CATEGORIES.get(c) for c in categories if isinstance(c, str))
            if isinstance(categories, list) else [])
    if not tags and provider in APIS_GURU_PROVIDERS:
        return [APIS_GURU_PROVIDERS[provider]]
    return tags


def organisation(provider: str) -> str:
    """The organisation behind a provider name, for counting distinct providers."""
    return PROVIDER_ALIASES.get(provider, provider)


def for_aws_service(service: str) -> list[str]:
    """The domain of an AWS service (infrastructure when it is not listed)."""
    return [AWS_SERVICES.get(service, INFRASTRUCTURE)]


def for_google_api(name: str) -> list[str]:
    """The domain of a Google API (infrastructure when it is not listed)."""
    return [GOOGLE_APIS.get(name, INFRASTRUCTURE)]


def for_mcp_server(name: str) -> list[str]:
    """The domain of an MCP server, or none when it is not listed."""
    domain = MCP_SERVERS.get(name)
    return [domain] if domain else []


def _ordered(tags: Iterable[str | None]) -> list[str]:
    found = {tag for tag in tags if tag}
    return [domain for domain in DOMAINS if domain in found]
