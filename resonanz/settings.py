"""Configuration, declared once and layered.

Order, lowest to highest: the bundled `defaults.toml` (works offline on the sample data) →
the user's `resonanz.toml` (or the file named by `RESONANZ_CONFIG`) → environment variables
`RESONANZ_*` (nested with `__`, e.g. `RESONANZ_GRAPH__DAMPING=0.9`) → explicit overrides
(flow parameters, CLI flags). Secrets are `SecretStr`: they print as `**********` and are
read only from the environment or a Prefect Secret block, never from a file in the repo.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUNDLED_DEFAULTS = Path(__file__).with_name("defaults.toml")
SAMPLE_DIR = Path(__file__).with_name("sample")


class Brand(BaseModel):
    """A tracked brand, product or competitor and the ways people write it."""

    name: str
    kind: Literal["brand", "product", "competitor"] = "brand"
    owner: str | None = None  # for a product: the brand it belongs to
    aliases: list[str] = Field(default_factory=list)  # spellings in EN and DE, matched case-insensitively
    handles: list[str] = Field(default_factory=list)  # account handles without "@"
    hashtags: list[str] = Field(default_factory=list)  # without "#"


class SourceSpec(BaseModel):
    """One stream to collect: a connector and what to ask it for."""

    name: str  # unique, used as the cursor key
    connector: str  # "x_replay", "x", "rss", "reddit", ...
    stream: str  # query, feed URL or path, subreddit, recorded-sample folder
    options: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


class GraphSettings(BaseModel):
    # Weights per interaction kind: a repost or quote spreads a voice further than a mention.
    weights: dict[str, float] = Field(
        default_factory=lambda: {"reply": 1.0, "repost": 2.0, "quote": 2.0, "mention": 0.5, "link": 0.5}
    )
    damping: float = 0.85
    half_life_days: float = 30.0
    top_n: int = 10


class Webhook(BaseModel):
    """A webhook that receives alerts; its URL is a secret (Slack and Teams put the token in it)."""

    url: SecretStr
    flavor: Literal["slack", "teams", "json"] = "json"


class AlertSettings(BaseModel):
    # Fire when a brand's share of negative posts in the window exceeds this, with enough volume.
    negative_share_threshold: float = 0.4
    min_posts: int = 20
    crisis_terms: list[str] = Field(default_factory=list)
    # Volume spikes: robust z-score against the same hour on earlier days (see act/spikes.py).
    spike_z_threshold: float = 4.0
    spike_min_posts: int = 5  # an hour with fewer posts never counts as a spike
    spike_history_days: int = 28
    # Negative surge: the window's negative share against the windows before it.
    surge_min_increase: float = 0.15  # share points, e.g. 0.15 = from 20 % to 35 %
    # A customer of these ABC classes who posts negatively fires `customer_negative`.
    high_value_classes: list[str] = Field(default_factory=lambda: ["A"])
    # The same rule for the same subject stays quiet this long after it fired (unless it got worse).
    cooldown_minutes: int = 240
    # Delivery: only alerts at or above this severity are sent; at most this many per message.
    deliver_min_severity: Literal["info", "warning", "critical"] = "warning"
    max_alerts_per_message: int = 20
    # Webhooks (Slack, Teams or plain JSON). URLs carry their secret in the path: set them in the
    # environment, e.g. RESONANZ_ALERTS__WEBHOOKS='[{"url": "https://hooks...", "flavor": "slack"}]'.
    webhooks: list[Webhook] = Field(default_factory=list)


class SmtpSettings(BaseModel):
    host: str | None = None
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "resonanz@localhost"
    recipients: list[str] = Field(default_factory=list)


class CrmSettings(BaseModel):
    # CSV exports; `bundled:` paths point into the package's sample folder.
    customers_csv: str | None = None
    identities_csv: str | None = None
    invoices_csv: str | None = None  # one row per invoice: the input of ABC, RFM and CLV
    crm_source: str = "crm"
    # Probabilistic linking: at or above `auto_link_threshold` a link is made; between the two
    # thresholds it waits in the review queue (`resonanz crm review`).
    auto_link_threshold: float = 0.9
    review_threshold: float = 0.5


class RetentionPolicy(BaseModel):
    """How long one source's raw payloads are kept as received (see warehouse/retention.py)."""

    source: str  # a raw_payloads.source, or "*" for every source without its own policy
    raw_payload_days: int | None = None  # None: kept forever
    mode: Literal["delete", "pseudonymise"] = "delete"


class NlpSettings(BaseModel):
    """Which enrich models run: "bundled", or the path of a local Hugging Face model directory (docs/models.md)."""

    # The languages the sources mostly carry: language detection multiplies their probabilities
    # by language_prior before it picks (1 = no preference), so short EN/DE posts stop being
    # read as French or Esperanto; another language still wins when the model is that much surer.
    expected_languages: list[str] = Field(default_factory=lambda: ["en", "de"])
    language_prior: float = Field(default=5.0, ge=1.0)
    # When the first model is unsure a post is in an expected language at all, Lingua over the
    # expected languages and these decides (None: the 13 of nlp.language.OTHER_LANGUAGES). Each
    # costs ~25 MB; [] turns the step off, and with it ~320 MB.
    language_others: list[str] | None = None

    # A sequence-classification model for sentiment; its labels map onto negative/neutral/positive.
    sentiment_model: str = "bundled"
    # How the bundled sentiment model runs (bench/enrich.py measures each): "finetuned" = e5-small
    # fine-tuned on EN+DE tweets, blended with the n-gram model (the most accurate; needs PyTorch,
    # falls back to "e5" without it); "e5" = frozen e5 embeddings + linear head, blended; "student" = the distilled static-embedding student only
    # (~8x faster, 8-13 points lower); "cascade:speed|fast|balanced|quality" = the student decides
    # when it is confident, the fine-tuned e5 the rest (speed sends ~5% to e5, quality ~87%).
    sentiment_mode: Literal["finetuned", "e5", "student", "cascade:speed", "cascade:fast", "cascade:balanced", "cascade:quality"] = "finetuned"
    # Identical texts (retweets, copy-paste campaigns) are classified once; 0 turns the cache off.
    sentiment_cache_entries: int = Field(default=100_000, ge=0)
    sentiment_languages: list[str] = Field(default_factory=lambda: ["en", "de"])
    sentiment_labels: dict[str, str] = Field(default_factory=dict)  # model label -> project label
    # The bundled entity models: "shared" = heads on the fine-tuned sentiment model's encoder, one
    # e5 pass per post for both tasks; "e5" = e5-small fine-tuned per language (1.6 F1 points more,
    # a second pass); "spacy" = the small spaCy CNNs (fastest, least accurate). The e5 engines
    # need PyTorch and fall back to "spacy" without it.
    ner_engine: Literal["e5", "spacy", "shared"] = "shared"
    # How the bundled e5 encoders multiply: "int8" (x86 with VNNI) makes enrich 1.3-1.6x as fast as
    # bfloat16 and keeps ~98.7% of float32's sentiment labels; "bf16" is ~1.5x as fast as float32
    # where the CPU has native bfloat16 (AVX-512 BF16 or AMX) and keeps 99.9%; "auto" picks int8
    # where it can, else bf16 where native, else fp32; "fp32" reproduces the trained models' own
    # arithmetic (bench/results/precision.json). Part of each model version.
    e5_precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    # Which posts the sentiment and entity models read: "all_posts", or "brand_posts" (only posts
    # that name a tracked brand; the rest keep language, relevance and intent but get no sentiment
    # and no entities). "brand_posts" saves the e5 pass on off-topic posts: worth it where feeds
    # or broad searches bring in many posts that name none of your brands.
    model_scope: Literal["all_posts", "brand_posts"] = "all_posts"
    # Token-classification models for entities, per language; labels map onto PER/ORG/LOC/PRODUCT/MISC.
    ner_model_en: str = "bundled"
    ner_model_de: str = "bundled"
    ner_labels: dict[str, str] = Field(default_factory=dict)  # "" drops a label
    # "first" labels a word by its first sub-word, as token-classification models are usually trained.
    ner_aggregation: Literal["simple", "first", "average", "max"] = "first"
    # A sequence-classification model for purchase intent (buy/consider/recommend/complaint/churn/none).
    intent_model: str = "bundled"
    # The bundled intent model: "states" also reads each post's pooled state from the fine-tuned
    # sentiment pass (where that pass reads every post; better in English), "ngrams" the n-gram
    # weights alone (the model before 2026-12-05: keeping it re-reads nothing on upgrade).
    intent_mode: Literal["states", "ngrams"] = "states"
    intent_languages: list[str] = Field(default_factory=lambda: ["en", "de"])
    intent_labels: dict[str, str] = Field(default_factory=dict)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RESONANZ_",
        env_nested_delimiter="__",
        extra="ignore",
        toml_file=[BUNDLED_DEFAULTS, Path("resonanz.toml")],
    )

    duckdb_path: Path = Path("resonanz.duckdb")
    report_dir: Path = Path("reports")
    export_dir: Path = Path("exports")
    # Partitioned Parquet copy of the big tables (`resonanz lake write`), for storage past one file.
    lake_dir: Path = Path("lake")
    # A read-only copy analysts attach while the pipeline writes (DuckDB allows one writer).
    snapshot_path: Path = Path("resonanz-snapshot.duckdb")
    prefect_home: Path = Path(".prefect")
    brands: list[Brand] = Field(default_factory=list)
    sources: list[SourceSpec] = Field(default_factory=list)
    graph: GraphSettings = Field(default_factory=GraphSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    crm: CrmSettings = Field(default_factory=CrmSettings)
    nlp: NlpSettings = Field(default_factory=NlpSettings)
    # Nothing is deleted or pseudonymised unless a policy is configured.
    retention: list[RetentionPolicy] = Field(default_factory=list)
    # Secrets: environment only (or a Prefect Secret block of the same name, see flows/secrets.py).
    x_bearer_token: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, deep_merge=True)
        return (init_settings, env_settings, toml)

    def source(self, name: str) -> SourceSpec:
        for spec in self.sources:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.sources) or "none"
        raise KeyError(f"no source named {name!r} (configured: {known})")


def resolve_path(value: str | Path) -> Path:
    """Resolve `bundled:<relative path>` into the package's sample folder; other paths as given."""
    text = str(value)
    if text.startswith("bundled:"):
        return SAMPLE_DIR / text.removeprefix("bundled:")
    return Path(text)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build settings from the layers; `config_file` replaces ./resonanz.toml as the user file."""
    user_file = Path(config_file or os.environ.get("RESONANZ_CONFIG", "resonanz.toml"))
    layered = type(
        "LayeredSettings",
        (Settings,),
        {"model_config": SettingsConfigDict(**{**Settings.model_config, "toml_file": [BUNDLED_DEFAULTS, user_file]})},
    )
    return layered(**overrides)
