"""Effective settings: defaults < tuned (`bookrec tune --apply`, stored in the database) < .env
file < BOOKREC_* environment < command-line options.

Sections are nested models; an environment variable names section and field joined by one
underscore, e.g. BOOKREC_DATABASE_URL, BOOKREC_CF_FACTORS, BOOKREC_WEIGHTS_HALF_LIFE_DAYS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from bookrec.algorithms.matrix import WeightScheme

ENV_PREFIX = "BOOKREC_"
ENV_FILE = ".env"
# Variables of bookrec's own test suite and benchmarks, not settings: never warned about.
DEVELOPMENT_VARIABLES = ("BOOKREC_TEST_", "BOOKREC_BENCH_", "BOOKREC_UPDATE_GOLDEN")


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        None, description="postgresql://user@host/db or sqlite:///path; unset = embedded SQLite"
    )
    connect_timeout: float = Field(5.0, description="seconds to wait for the server")


class CfSettings(BaseModel):
    factors: int = Field(128, ge=1, description="vector dimension")
    iterations: int = Field(15, ge=1, description="ALS iterations")
    min_interactions: int = Field(2, ge=1, description="k-core: minimum per user and per book")
    regularization: float | None = Field(
        None,
        ge=0,
        description="L2 regularization; unset = regularization_scale · alpha · √(user-book pairs)",
    )
    regularization_scale: float = Field(
        0.06, gt=0, description="the scale of the regularization's formula when it is unset"
    )
    alpha: float = Field(4.0, gt=0, description="confidence scaling of interaction strength")
    seed: int = 42
    threads: int = Field(0, ge=0, description="ALS threads; 0 = all cores")
    engine: Literal["builtin", "spark"] = Field(
        "builtin", description="builtin (implicit) or spark (MLlib ALS, the spark extra)"
    )


class GnnSettings(BaseModel):
    dim: int = Field(128, ge=1, description="vector dimension")
    min_interactions: int = Field(1, ge=1, description="minimum interactions per book")
    walk_length: int = Field(10, ge=2)
    walks_per_node: int = Field(6, ge=1)
    p: float = Field(1.0, gt=0, description="return parameter")
    q: float = Field(0.5, gt=0, description="in-out parameter")
    window: int = Field(5, ge=1)
    epochs: int = Field(1, ge=1)
    negative: int = Field(5, ge=1)
    learning_rate: float = Field(
        0.15, gt=0, le=1, description="skip-gram's initial learning rate (decays linearly to ~0)"
    )
    sample: float | None = Field(
        None,
        ge=0,
        description="skip-gram down-sampling of frequent nodes; unset: max(1e-4, 1 / nodes)",
    )
    prior: float = Field(1.5, ge=0, description="weight of the popularity prior in scoring")
    seed: int = 42
    workers: int = Field(0, ge=0, description="skip-gram workers; 0 = all cores")
    engine: Literal["builtin", "node2vec", "spark"] = "builtin"


class ContentSettings(BaseModel):
    model: Literal["lsa", "minilm"] = "lsa"
    dim: int = Field(128, ge=2)
    batch_size: int = Field(64, ge=1)
    prior: float = Field(0.5, ge=0, description="weight of the popularity prior in scoring")
    seed: int = 42


class WeightsSettings(BaseModel):
    """Interaction strength per event, shared by cf, gnn, popular and evaluate."""

    view: float = Field(1.0, ge=0)
    click: float = Field(2.0, ge=0)
    like: float = Field(4.0, ge=0)
    purchase: float = Field(6.0, ge=0)
    rate_per_star: float = Field(2.0, ge=0, description="rate: weight per star above zero_at")
    rate_zero_at: float = Field(2.0, ge=0, description="ratings at or below this weigh zero")
    cap: float = Field(10.0, gt=0, description="maximum strength of one user-book pair")
    half_life_days: float | None = Field(None, gt=0, description="time decay; unset = none")

    def scheme(self) -> WeightScheme:
        """These weights as the algorithms take them."""
        from bookrec.algorithms.matrix import WeightScheme

        return WeightScheme(**self.model_dump())


class HybridSettings(BaseModel):
    """Fusion weights; unset = learnt from the data (`evaluate` on a validation split of its
    training part, `train` from the quality gate's held-out scores), an explicit number wins."""

    cf: float | None = Field(None, ge=0, description="unset = learnt")
    gnn: float | None = Field(None, ge=0, description="unset = learnt")
    content: float | None = Field(None, ge=0, description="unset = learnt")
    popular: float | None = Field(
        None, ge=0, description="unset = learnt; users nothing else serves get popular anyway"
    )

    def explicit(self) -> dict[str, float]:
        """The weights given as numbers."""
        return {name: w for name, w in self.model_dump().items() if w is not None}

    def all_explicit(self) -> bool:
        return len(self.explicit()) == len(type(self).model_fields)


class GateSettings(BaseModel):
    """The quality gate of train cf / train gnn (see services.gate)."""

    enabled: bool = Field(True, description="measure a candidate before it replaces vectors")
    users: int = Field(
        5000,
        ge=1,
        description="held-out users (at most 10% of eligible ones; past 200k books fewer in"
        " proportion, never below 1,000)",
    )
    tolerance: float = Field(
        0.03, ge=0, description="reject below published nDCG@k minus this (absolute)"
    )
    k: int = Field(10, ge=1, description="nDCG cut-off")
    seed: int = 42


class SparkSettings(BaseModel):
    """Where `--engine spark` runs (see bookrec.engines.spark)."""

    master: str = Field(
        "local[*]", description="Spark master: local[N], spark://host:7077, yarn, k8s://…"
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="extra Spark conf (BOOKREC_SPARK_CONF as a JSON object)"
    )
    staging: str | None = Field(
        None,
        description="data hand-off location every executor reads: a directory, hdfs://…,"
        " s3a://…; unset = the system's temporary directory",
    )
    executor_memory: str | None = Field(None, description="spark.executor.memory, e.g. 8g")
    driver_memory: str | None = Field(
        None, description="spark.driver.memory (the executors too in local mode), e.g. 4g"
    )
    jdbc_jar: str | None = Field(
        None, description="PostgreSQL JDBC driver jar, for Spark to read interactions over JDBC"
    )
    partitions: int = Field(
        0, ge=0, description="hand-off partitions, ALS blocks, walk tasks; 0 = Spark's default"
    )
    skipgram: Literal["mllib", "gensim"] = Field(
        "mllib", description="gnn skip-gram: MLlib Word2Vec on the cluster, or gensim here"
    )
    word2vec_partitions: int = Field(
        1, ge=1, description="MLlib Word2Vec numPartitions (more: faster, less accurate)"
    )


class StatusSettings(BaseModel):
    max_vector_age_hours: float = Field(
        168.0,
        gt=0,
        description="warn when an interaction has waited this long for the vectors to include it",
    )
    max_data_age_hours: float | None = Field(
        None, gt=0, description="warn when no interaction has arrived for this long; unset = off"
    )
    max_fold_in_age_hours: float | None = Field(
        None,
        gt=0,
        description="warn when an interaction has waited this long for a fold-in; unset = off",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="ignore",
    )

    database: DatabaseSettings = DatabaseSettings()
    cf: CfSettings = CfSettings()
    gnn: GnnSettings = GnnSettings()
    content: ContentSettings = ContentSettings()
    weights: WeightsSettings = WeightsSettings()
    hybrid: HybridSettings = HybridSettings()
    gate: GateSettings = GateSettings()
    spark: SparkSettings = SparkSettings()
    status: StatusSettings = StatusSettings()
    _tuned: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    def defaults(cls) -> Settings:
        """The defaults alone: no environment variable and no .env file is read."""
        return cls.model_construct()

    def with_overrides(self, section: str, **values: Any) -> Settings:
        """A copy with the given section's fields replaced where the value is not None."""
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            return self
        current = getattr(self, section)
        return self._with_section(section, given, current.model_fields_set | set(given))

    def with_tuned(self, tuned: dict[str, tuple[Any, int]]) -> Settings:
        """A copy with stored tuned values ('section.field' -> (value, the run that chose it))
        in place of the defaults: a field set explicitly (by .env, environment, command line or
        the caller's code) keeps its value. `tuned_sources()` then names the runs."""
        from pydantic import ValidationError

        updated = self.model_copy()
        applied: dict[str, int] = dict(self._tuned)
        by_section: dict[str, dict[str, Any]] = {}
        for key, (value, run_id) in tuned.items():
            section, _, name = key.partition(".")
            model = type(self).model_fields.get(section)
            if model is None or name not in model.annotation.model_fields:  # type: ignore[union-attr]
                continue  # a setting this version no longer has
            if name in getattr(self, section).model_fields_set:
                continue
            by_section.setdefault(section, {})[name] = value
            applied[key] = run_id
        for section, values in by_section.items():
            current = getattr(updated, section)
            try:
                updated = updated._with_section(section, values, current.model_fields_set)
            except ValidationError:  # values this version no longer accepts: defaults stay
                applied = {k: v for k, v in applied.items() if k.split(".")[0] != section}
        updated._tuned = applied
        return updated

    def tuned_sources(self) -> dict[str, int]:
        """'section.field' -> the tune run whose value it has."""
        return dict(self._tuned)

    def _with_section(self, section: str, values: dict[str, Any], fields_set: set[str]) -> Settings:
        """A copy with the section's fields replaced (validated), marking `fields_set` as the
        fields given explicitly: what tuned values must not replace."""
        current = getattr(self, section)
        validated = current.model_validate({**current.model_dump(), **values})
        updated = type(current).model_construct(_fields_set=fields_set, **dict(validated))
        copy = self.model_copy(update={section: updated})
        replaced = {f"{section}.{name}" for name in values}
        copy._tuned = {k: v for k, v in self._tuned.items() if k not in replaced}
        return copy


def default_sqlite_path() -> Path:
    from platformdirs import user_data_path

    return user_data_path("bookrec", appauthor=False) / "bookrec.db"


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded SQLite default."""
    if settings.database.url:
        return settings.database.url
    return f"sqlite:///{default_sqlite_path()}"


def env_var_name(section: str, field: str) -> str:
    return f"{ENV_PREFIX}{section}_{field}".upper()


def setting_sources(
    cli_overrides: dict[str, set[str]] | None = None, tuned: dict[str, int] | None = None
) -> dict[str, str]:
    """Where each 'section.field' came from: option, env, .env, tuned (run N) or default."""
    from dotenv import dotenv_values

    cli_overrides = cli_overrides or {}
    env = {k.upper() for k in os.environ}
    dotenv = {k.upper() for k in dotenv_values(ENV_FILE)} if Path(ENV_FILE).is_file() else set()
    sources: dict[str, str] = {}
    for section, info in Settings.model_fields.items():
        model = info.annotation
        for field in model.model_fields:  # type: ignore[union-attr]
            name = env_var_name(section, field)
            if field in cli_overrides.get(section, set()):
                sources[f"{section}.{field}"] = "option"
            elif name in env:
                sources[f"{section}.{field}"] = f"env {name}"
            elif name in dotenv:
                sources[f"{section}.{field}"] = f".env {name}"
            elif f"{section}.{field}" in (tuned or {}):
                sources[f"{section}.{field}"] = f"tuned (run {tuned[f'{section}.{field}']})"
            else:
                sources[f"{section}.{field}"] = "default"
    return sources


def known_variables() -> set[str]:
    """Every BOOKREC_* variable that is a setting (or a whole section, as JSON)."""
    names = set()
    for section, info in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{section}".upper())
        for field in info.annotation.model_fields:  # type: ignore[union-attr]
            names.add(env_var_name(section, field))
    return names


def dotenv_lines() -> dict[str, tuple[int, str]]:
    """NAME -> (line number, value) of each BOOKREC_* variable in the .env file."""
    if not Path(ENV_FILE).is_file():
        return {}
    from dotenv.parser import parse_stream

    with open(ENV_FILE, encoding="utf-8") as stream:
        return {
            binding.key.upper(): (binding.original.line, binding.value or "")
            for binding in parse_stream(stream)
            if binding.key and binding.key.upper().startswith(ENV_PREFIX)
        }


def unknown_variables() -> list[str]:
    """One line per BOOKREC_* variable of the environment or .env that no setting reads,
    with the closest setting's name when one is close: `BOOKREC_CF_FATORS` is a typo."""
    from difflib import get_close_matches

    known = known_variables()
    found = {name.upper(): f"environment variable {name}" for name in os.environ}
    for name, (line, _) in dotenv_lines().items():
        found.setdefault(name, f"{ENV_FILE} line {line}: {name}")
    lines = []
    for name, where in sorted(found.items()):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        if name.startswith(DEVELOPMENT_VARIABLES):
            continue
        close = get_close_matches(name, known, n=1, cutoff=0.8)
        lines.append(
            f"{where} is not a bookrec setting"
            + (f"; did you mean {close[0]}?" if close else " (bookrec config lists them)")
        )
    return lines


def variable_source(section: str, field: str) -> str | None:
    """Where an environment-or-.env value of a setting came from, for an error message:
    "BOOKREC_CF_FACTORS='abc'" or ".env line 3: BOOKREC_CF_FACTORS=abc" (no value shown for
    the database section: a URL may hold a password)."""
    name = env_var_name(section, field)
    secret = section == "database"
    value = next((v for k, v in os.environ.items() if k.upper() == name), None)
    if value is not None:
        return name if secret else f"{name}={value!r}"
    in_file = dotenv_lines().get(name)
    if in_file is not None:
        line, value = in_file
        return f"{ENV_FILE} line {line}: {name}" + ("" if secret else f"={value}")
    return None
