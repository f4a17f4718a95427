"""The daemon's configuration: one YAML file, overridable from the environment, validated at start.

Every key of the file can be overridden by an environment variable named ``STREAMEM_`` followed by
the key's path in upper case, levels joined by a double underscore::

    STREAMEM_KAFKA__BOOTSTRAP_SERVERS=broker-1:9092,broker-2:9092
    STREAMEM_MODEL__N_COMPONENTS=4
    STREAMEM_KAFKA__TOPICS="[sensors, sensors-eu]"

Values are parsed as YAML 1.2 scalars (``4`` is an integer, ``1e-6`` a float, ``true`` a boolean,
``[a, b]`` a list, ``null`` nothing); ``yes``/``no``/``on``/``off`` stay strings, in the file too.
Secrets (``kafka.security.sasl_plain_password`` and ``kafka.security.ssl_password``) are read from
the environment only, as raw strings, and a secret written in the file is an error.

Any problem (missing file, bad YAML, unknown key, bad value, inconsistent values) raises one
:class:`ConfigError` that lists every problem with the key's dotted path, what was expected and
what was received.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

import pydantic
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)
from pydantic import model_validator as _model_validator
from pydantic_core import PydanticCustomError

from streamem.errors import ValidationError
from streamem.models.common.screen import MAX_OUTLIER_FRACTION, OUTLIER_MARGIN
from streamem.models.common.vocabulary import FixedVocabulary, HashingVocabulary, Vocabulary
from streamem.models.registry import family_names, family_spec, family_specs

__all__ = [
    "ENV_PREFIX",
    "BatchingSettings",
    "ConfigError",
    "ConfigProblem",
    "ConsumerSettings",
    "DriftSettings",
    "GuardSettings",
    "InputSettings",
    "KafkaSettings",
    "LoggingSettings",
    "MetricsSettings",
    "ModelSettings",
    "OutputSettings",
    "ProducerSettings",
    "ScheduleSettings",
    "SecuritySettings",
    "Settings",
    "StateSettings",
    "VocabularySettings",
    "load_config",
]

ENV_PREFIX = "STREAMEM_"
"""Prefix of the environment variables that override config keys."""

_ENV_SEPARATOR = "__"

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ConfigProblem(NamedTuple):
    """One problem found while loading the configuration.

    Attributes
    ----------
    key
        Dotted path of the offending key (``"model.n_components"``, ``"kafka.topics[0]"``), or
        ``""`` when the problem is not about one key (a missing file, unreadable YAML).
    message
        What was expected and what was received.
    """

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(ValidationError):
    """The daemon's configuration cannot be loaded.

    Parameters
    ----------
    source
        Where the configuration came from (a file name, or ``"defaults"``).
    problems
        Every problem found; the message lists them all.

    Examples
    --------
    >>> try:
    ...     load_config(None, {"STREAMEM_MODEL__N_COMPONENTS": "0"})
    ... except ConfigError as error:
    ...     print(error.keys)
    ('model.n_components',)
    """

    def __init__(self, source: str, problems: tuple[ConfigProblem, ...]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid streamem configuration ({source}):\n{lines}")

    @property
    def keys(self) -> tuple[str, ...]:
        """Dotted paths of the offending keys, in the order of :attr:`problems`."""
        return tuple(problem.key for problem in self.problems)


def _families_taking(option: str) -> list[str]:
    """The families whose declaration reads ``option`` of the ``model`` section."""
    return [spec.name for spec in family_specs() if option in spec.options]


def _either(names: list[str]) -> str:
    """``'a'``, ``'a' or 'b'``: the families a rule names."""
    return " or ".join(repr(name) for name in names)


def _rule_error(field: str, message: str) -> PydanticCustomError:
    """Return a validation error about ``field`` of the model whose validator raises it."""
    return PydanticCustomError("config_rule", message, {"field": field})


# --------------------------------------------------------------------------------------------
# Settings models
# --------------------------------------------------------------------------------------------


def _registered_family(name: str) -> str:
    """``name`` if the registry knows it (read when a config is validated, so that a family
    registered by a plug-in counts)."""
    names = family_names()
    if name not in names:
        raise ValueError(
            "expected " + ", ".join(repr(n) for n in names[:-1]) + f" or {names[-1]!r}"
        )
    return name


FamilyName = Annotated[
    str, AfterValidator(_registered_family), WithJsonSchema({"enum": list(family_names())})
]
"""A family of :mod:`streamem.models.registry` (the choices of ``model.family``)."""

TopicName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
"""A Kafka topic name: 1-249 characters among letters, digits, ``.``, ``_`` and ``-``."""

FeatureName = Annotated[str, StringConstraints(min_length=1)]
PositiveInt = Annotated[int, Field(ge=1)]
PositiveFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, values are typed strictly, immutable."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        allow_inf_nan=False,
        protected_namespaces=(),
    )


class ConsumerSettings(_Section):
    """Timing and size settings of the Kafka consumer (``kafka.consumer``).

    The names and meanings are kafka-python's. ``heartbeat_interval_ms`` must be below
    ``session_timeout_ms`` and ``fetch_max_wait_ms`` below ``request_timeout_ms``. Where no
    checkpoint exists, ``auto_offset_reset`` says where reading starts (``earliest`` learns
    from everything still in the topic).

    ``fetch_max_wait_ms`` is 100 (kafka-python's default: 500): kafka-python keeps one fetch in
    flight per broker and leaves a partition whose records are still buffered out of it, so a
    fetch of partitions already at their log end, which the broker holds up to this long, keeps
    the partitions with a backlog waiting (``benchmarks/scaleout.py``, 600,000 records: two
    replicas of four partitions 1.27x as fast as one daemon with 500, 1.48x with 100); an idle
    consumer sends a small fetch request every 100 ms instead of every 500.

    Examples
    --------
    >>> ConsumerSettings(session_timeout_ms=2000, heartbeat_interval_ms=500).max_poll_records
    5000
    """

    session_timeout_ms: PositiveInt = 10_000
    heartbeat_interval_ms: PositiveInt = 3_000
    max_poll_interval_ms: PositiveInt = 300_000
    max_poll_records: PositiveInt = 5_000
    fetch_max_bytes: PositiveInt = 52_428_800
    max_partition_fetch_bytes: PositiveInt = 10_485_760
    fetch_max_wait_ms: Annotated[int, Field(ge=0)] = 100
    request_timeout_ms: PositiveInt = 30_000
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"

    @_model_validator(mode="after")
    def _check_timing(self) -> ConsumerSettings:
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise _rule_error(
                "heartbeat_interval_ms",
                f"expected a value below session_timeout_ms ({self.session_timeout_ms}), "
                f"received {self.heartbeat_interval_ms}",
            )
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise _rule_error(
                "fetch_max_wait_ms",
                f"expected a value below request_timeout_ms ({self.request_timeout_ms}), "
                f"received {self.fetch_max_wait_ms}",
            )
        return self


class ProducerSettings(_Section):
    """Settings of the Kafka producer that publishes models and dead letters (``kafka.producer``).

    ``max_request_size`` bounds the size of one published model (a full-covariance model with
    many components and features can exceed kafka-python's default of 1 MiB). Idempotence
    requires ``acks: all``. ``max_block_ms`` bounds how long a send may wait for a topic's
    metadata and ``delivery_timeout_ms`` how long a record may wait for its acknowledgement
    (both below kafka-python's defaults of 60 s and 120 s, so that a broker outage is noticed
    and the producer recreated in time); ``delivery_timeout_ms`` must exceed ``linger_ms`` plus
    ``kafka.consumer.request_timeout_ms`` (which the producer shares).

    Examples
    --------
    >>> ProducerSettings(compression_type="gzip").linger_ms
    5
    """

    linger_ms: Annotated[int, Field(ge=0)] = 5
    max_request_size: PositiveInt = 4_194_304
    max_block_ms: Annotated[int, Field(ge=0)] = 10_000
    delivery_timeout_ms: PositiveInt = 45_000
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"] | None = None
    acks: Literal["all", 0, 1] = "all"
    enable_idempotence: bool = True

    @_model_validator(mode="after")
    def _check_idempotence(self) -> ProducerSettings:
        if self.enable_idempotence and self.acks != "all":
            raise _rule_error(
                "acks",
                f"expected 'all' when enable_idempotence is true, received {self.acks!r}",
            )
        return self


class SecuritySettings(_Section):
    """How the clients authenticate and encrypt (``kafka.security``).

    ``sasl_plain_password`` and ``ssl_password`` (the password of the SSL private key) are
    secrets: they come from the environment only, ``STREAMEM_KAFKA__SECURITY__SASL_PLAIN_PASSWORD``
    and ``STREAMEM_KAFKA__SECURITY__SSL_PASSWORD``. A SASL protocol needs a mechanism, a user
    name and a password; SASL and SSL options with a protocol that does not use them are errors.

    Examples
    --------
    >>> security = SecuritySettings(
    ...     protocol="SASL_SSL",
    ...     sasl_mechanism="SCRAM-SHA-512",
    ...     sasl_plain_username="streamem",
    ...     sasl_plain_password="s3cret",
    ... )
    >>> security.sasl_plain_password
    SecretStr('**********')
    >>> security.client_kwargs()["sasl_plain_password"]
    's3cret'
    """

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: SecretStr | None = None
    ssl_check_hostname: bool = True

    @_model_validator(mode="after")
    def _check_consistency(self) -> SecuritySettings:
        uses_sasl = self.protocol.startswith("SASL_")
        uses_ssl = self.protocol.endswith("SSL")
        if uses_sasl:
            if self.sasl_mechanism is None:
                raise _rule_error(
                    "sasl_mechanism",
                    f"expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 with protocol "
                    f"{self.protocol}, received null",
                )
            if not self.sasl_plain_username:
                raise _rule_error(
                    "sasl_plain_username",
                    f"expected a user name with protocol {self.protocol}, received nothing",
                )
            if self.sasl_plain_password is None:
                raise _rule_error(
                    "sasl_plain_password",
                    f"expected a password with protocol {self.protocol}, received nothing; set "
                    f"{ENV_PREFIX}KAFKA__SECURITY__SASL_PLAIN_PASSWORD",
                )
        else:
            for name in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
                if getattr(self, name) is not None:
                    raise _rule_error(
                        name,
                        f"expected no SASL option with protocol {self.protocol} (use SASL_SSL "
                        f"or SASL_PLAINTEXT to authenticate with SASL)",
                    )
        if not uses_ssl:
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
                if getattr(self, name) is not None:
                    raise _rule_error(
                        name,
                        f"expected no SSL option with protocol {self.protocol} (use SSL or "
                        f"SASL_SSL to encrypt)",
                    )
        return self

    def client_kwargs(self) -> dict[str, Any]:
        """Return the kafka-python keyword arguments of these settings, secrets revealed.

        Options left unset are omitted so that kafka-python's defaults apply.

        Returns
        -------
        dict
            ``security_protocol``, ``ssl_check_hostname`` and whichever SASL / SSL options
            are set.

        Examples
        --------
        >>> SecuritySettings().client_kwargs()
        {'security_protocol': 'PLAINTEXT', 'ssl_check_hostname': True}
        """
        kwargs: dict[str, Any] = {
            "security_protocol": self.protocol,
            "ssl_check_hostname": self.ssl_check_hostname,
        }
        optional: dict[str, str | SecretStr | None] = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_password": self.ssl_password,
        }
        for name, value in optional.items():
            if isinstance(value, SecretStr):
                kwargs[name] = value.get_secret_value()
            elif value is not None:
                kwargs[name] = value
        return kwargs


class KafkaSettings(_Section):
    """Where to read from and how to talk to the brokers (``kafka``).

    ``bootstrap_servers`` is a ``host:port`` string, a comma-separated list of them, or a YAML
    list; it is stored as a list. Use :meth:`consumer_kwargs` and :meth:`producer_kwargs` to
    build the clients, so that no setting is spelled out twice.

    Examples
    --------
    >>> kafka = KafkaSettings(bootstrap_servers="b1:9092, b2:9092", topics=["sensors"])
    >>> kafka.bootstrap_servers
    ['b1:9092', 'b2:9092']
    >>> kafka.consumer_kwargs()["enable_auto_commit"]
    False
    """

    bootstrap_servers: list[str] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    group_id: Annotated[str, StringConstraints(min_length=1)] = "streamem"
    topics: Annotated[list[TopicName], Field(min_length=1)] = Field(
        default_factory=lambda: ["sensors"]
    )
    client_id: Annotated[str, StringConstraints(min_length=1)] = "streamem"
    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    producer: ProducerSettings = Field(default_factory=ProducerSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _split_servers(cls, value: Any) -> list[str]:
        expected = "expected a 'host:port' string, a comma-separated list or a list of them"
        if isinstance(value, str):
            servers = [part.strip() for part in value.split(",") if part.strip()]
        elif isinstance(value, list) and all(isinstance(part, str) for part in value):
            servers = [part.strip() for part in value]
        else:
            raise PydanticCustomError("config_rule", expected)
        if not servers or not all(servers):
            raise PydanticCustomError("config_rule", expected)
        return servers

    @_model_validator(mode="after")
    def _check_delivery_timeout(self) -> KafkaSettings:
        least = self.producer.linger_ms + self.consumer.request_timeout_ms
        if self.producer.delivery_timeout_ms <= least:
            raise _rule_error(
                "producer.delivery_timeout_ms",
                f"expected a value above producer.linger_ms + consumer.request_timeout_ms "
                f"({least}), received {self.producer.delivery_timeout_ms}",
            )
        return self

    @field_validator("topics")
    @classmethod
    def _unique_topics(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("config_rule", "expected distinct topic names")
        return value

    def _common_kwargs(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            **self.security.client_kwargs(),
        }

    def consumer_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of :class:`kafka.KafkaConsumer`.

        The topics are not included (subscribe or assign them); auto-commit is off because the
        checkpoint, not the group's committed offset, is the source of truth.

        Returns
        -------
        dict
            ``bootstrap_servers``, ``client_id``, ``group_id``, ``enable_auto_commit``, every
            key of ``kafka.consumer`` and the security options (secrets revealed).

        Examples
        --------
        >>> kwargs = KafkaSettings().consumer_kwargs()
        >>> kwargs["group_id"], kwargs["session_timeout_ms"], kwargs["security_protocol"]
        ('streamem', 10000, 'PLAINTEXT')
        """
        return {
            **self._common_kwargs(),
            "group_id": self.group_id,
            "enable_auto_commit": False,
            **self.consumer.model_dump(),
        }

    def producer_kwargs(self) -> dict[str, Any]:
        """Return the keyword arguments of :class:`kafka.KafkaProducer`.

        Returns
        -------
        dict
            ``bootstrap_servers``, ``client_id``, ``request_timeout_ms`` (shared with the
            consumer), every key of ``kafka.producer`` that is set, and the security options.

        Examples
        --------
        >>> kwargs = KafkaSettings().producer_kwargs()
        >>> kwargs["linger_ms"], kwargs["acks"], "compression_type" in kwargs
        (5, 'all', False)
        """
        producer = {k: v for k, v in self.producer.model_dump().items() if v is not None}
        return {
            **self._common_kwargs(),
            "request_timeout_ms": self.consumer.request_timeout_ms,
            **producer,
        }


class InputSettings(_Section):
    """How a record's value becomes points (``input``); the spec of :mod:`streamem.service.codecs`.

    ``features`` names the fields of a JSON object and fixes the dimension for every format.
    With ``allow_missing`` a missing or null feature (a NaN in packed formats) is marginalised
    instead of rejected. ``sequence_key`` (``json`` only, for a sequential model family) names
    the field whose value says which sequence a reading continues (e.g. ``sensor``: each
    sensor's readings are one sequence with its own filter state); the producer must key the
    records by it, so that one sequence stays in one partition, in order. Without it a
    sequential family takes each partition as one sequence. ``bounds`` gives some features a
    closed interval ``[low, high]``; a point with a feature outside it is dead-lettered as
    ``out_of_bounds`` (a missing feature is not checked).

    ``text`` (for the ``lda`` model family only) reads each record's value as one UTF-8
    document (see :mod:`streamem.service.documents`; ``max_record_bytes`` is the largest
    document); ``features`` then holds one name, that of the document (``text`` by default),
    and the columns are those of ``model.vocabulary``.

    Examples
    --------
    >>> spec = InputSettings(format="csv", features=["temp", "hum", "pressure"])
    >>> spec.dimension
    3
    >>> InputSettings(features=["temp", "hum"], bounds={"temp": [-40, 125]}).bounds
    {'temp': [-40.0, 125.0]}
    """

    format: Literal["json", "json_array", "csv", "packed_f32", "packed_f64", "text"] = "json"
    features: Annotated[list[FeatureName], Field(min_length=1)] = Field(
        default_factory=lambda: ["temp", "hum"]
    )

    @_model_validator(mode="before")
    @classmethod
    def _text_feature(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("format") == "text" and "features" not in data:
            return {**data, "features": ["text"]}
        return data

    @_model_validator(mode="after")
    def _check_text(self) -> InputSettings:
        if self.format == "text" and len(self.features) != 1:
            raise _rule_error(
                "features",
                f"expected one name (that of the document) with format 'text', received "
                f"{self.features}",
            )
        return self

    max_record_bytes: PositiveInt = 1_048_576
    allow_missing: bool = False
    csv_delimiter: Annotated[str, StringConstraints(min_length=1, max_length=1)] = ","
    sequence_key: FeatureName | None = None
    max_keys: PositiveInt = 10_000
    max_key_bytes: PositiveInt = 256
    max_word_count: PositiveInt = 20
    bounds: dict[FeatureName, Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        default_factory=dict
    )

    @_model_validator(mode="after")
    def _check_sequence_key(self) -> InputSettings:
        if self.sequence_key is None:
            return self
        if self.format != "json":
            raise _rule_error(
                "sequence_key",
                f"expected null with format {self.format!r} (a sequence key is a field of a "
                f"JSON object), received {self.sequence_key!r}",
            )
        if self.sequence_key in self.features:
            raise _rule_error(
                "sequence_key",
                f"expected a field that is not a feature, received {self.sequence_key!r}",
            )
        return self

    @_model_validator(mode="after")
    def _check_bounds(self) -> InputSettings:
        for name, (low, high) in self.bounds.items():
            if name not in self.features:
                raise _rule_error(
                    "bounds", f"expected names of input.features {self.features}, received {name!r}"
                )
            if not low < high:
                raise _rule_error(
                    "bounds",
                    f"expected [low, high] with low < high for {name!r}, received [{low}, {high}]",
                )
        return self

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[str]) -> list[str]:
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise PydanticCustomError(
                "config_rule",
                "expected distinct names ({duplicates} repeated)",
                {"duplicates": ", ".join(duplicates)},
            )
        return value

    @field_validator("csv_delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str) -> str:
        if value.isalnum() or value in ".+-_\"'\r\n":
            raise PydanticCustomError(
                "config_rule",
                "expected one character that cannot occur in a number (',', ';', a tab, ...)",
            )
        return value

    @property
    def dimension(self) -> int:
        """Number of features, the dimension of every point."""
        return len(self.features)


class OutputSettings(_Section):
    """Where models and rejected records go (``output``).

    A new model version is published after ``publish_every_batches`` batches or
    ``publish_every_seconds`` seconds, whichever comes first. ``dead_letter_topic: null`` drops
    rejected records (they are still counted). A rejected value longer than
    ``dead_letter_max_bytes`` (default 1,000,000, below Kafka's default ``message.max.bytes``)
    is truncated in the dead letter, which then says so in its headers.

    ``statistics_topic`` (null by default: one replica learns alone) makes the replicas of a
    consumer group learn one model: each publishes its partitions' statistics there and merges
    the others' (see :mod:`streamem.service.shards`); a compacted topic in production.

    ``results_topic`` (null by default: off) receives one result per valid record, keyed like
    the record (see :mod:`streamem.service.results`), with the top ``results_top_k`` class
    probabilities (null: all); a record is flagged as an anomaly when its score is above the
    running ``anomaly_quantile`` of the stream's earlier scores (0.999: one clean reading in
    1,000 is flagged).

    Examples
    --------
    >>> OutputSettings().topic
    'streamem.models'
    """

    topic: TopicName = "streamem.models"
    dead_letter_topic: TopicName | None = "streamem.dead-letter"
    publish_every_batches: PositiveInt = 1
    publish_every_seconds: PositiveFloat = 5.0
    dead_letter_max_bytes: PositiveInt = 1_000_000
    statistics_topic: TopicName | None = None
    results_topic: TopicName | None = None
    results_top_k: PositiveInt | None = 3
    anomaly_quantile: Annotated[float, Field(gt=0, lt=1)] = 0.999


class BatchingSettings(_Section):
    """Micro-batching (``batching``): a batch closes at ``batch_size`` points or after
    ``max_wait_ms``, whichever comes first.

    Examples
    --------
    >>> BatchingSettings(batch_size=500).max_wait_ms
    500
    """

    batch_size: PositiveInt = 1_000
    max_wait_ms: Annotated[int, Field(ge=0)] = 500


class ScheduleSettings(_Section):
    """The step-size schedule of stepwise EM (``model.schedule``).

    - ``power``: eta_k = (k + t0) ** -alpha with alpha in (0.5, 1]; converges.
    - ``constant``: eta_k = step_size; forgets the past geometrically, tracks drift.
    - ``half_life``: the weight of a point halves after ``half_life`` further points.

    Examples
    --------
    >>> ScheduleSettings(kind="half_life", half_life=50_000).half_life
    50000.0
    """

    kind: Literal["power", "constant", "half_life"] = "power"
    alpha: Annotated[float, Field(gt=0.5, le=1.0)] = 0.6
    t0: Annotated[float, Field(ge=0)] = 2.0
    step_size: Fraction = 0.01
    half_life: PositiveFloat = 100_000.0


class VocabularySettings(_Section):
    """The columns of a topic model's documents (``model.vocabulary``): exactly one of a fixed
    vocabulary (``words``, inline, or ``file``, one word per line, UTF-8) or hashing into
    ``n_features`` columns (scikit-learn's ``HashingVectorizer(alternate_sign=False)``
    columns). See :mod:`streamem.models.common.vocabulary`. A token outside a fixed vocabulary is
    dropped; a relative ``file`` is read from the working directory at load.

    Examples
    --------
    >>> VocabularySettings(words=["rain", "sun"]).build().n_features
    2
    >>> VocabularySettings(n_features=1024).spec()
    1024
    """

    words: Annotated[list[FeatureName], Field(min_length=1)] | None = None
    file: Annotated[Path, Field(strict=False)] | None = None
    n_features: PositiveInt | None = None
    _words: tuple[str, ...] | None = PrivateAttr(default=None)

    @_model_validator(mode="after")
    def _check_one(self) -> VocabularySettings:
        given = [name for name in ("words", "file", "n_features") if getattr(self, name)]
        if len(given) != 1:  # the second key given is the one too many (none given: words)
            raise _rule_error(
                given[1] if len(given) > 1 else "words",
                f"expected exactly one of words, file, n_features, received "
                f"{', '.join(given) or 'none'}",
            )
        words = self.words
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise _rule_error(
                    "file", f"expected a readable UTF-8 file of words, received {error}"
                ) from None
            words = [line.strip() for line in text.splitlines() if line.strip()]
            if not words:
                raise _rule_error("file", f"expected words in {str(self.file)!r}, received none")
        if words is not None:
            if len(set(words)) != len(words):
                repeated = sorted(word for word, n in Counter(words).items() if n > 1)[:5]
                raise _rule_error(
                    "file" if self.file is not None else "words",
                    f"expected distinct words, received repeated {repeated}",
                )
            self._words = tuple(words)
        return self

    def spec(self) -> tuple[str, ...] | int:
        """The words of a fixed vocabulary, or the number of hashed columns (the ``vocabulary``
        hyper-parameter of :class:`~streamem.LatentDirichletAllocation`)."""
        return self._words if self._words is not None else int(self.n_features or 0)

    def build(self) -> Vocabulary:
        """The token-to-column rule."""
        spec = self.spec()
        return HashingVocabulary(spec) if isinstance(spec, int) else FixedVocabulary(spec)


class ModelSettings(_Section):
    """The model to learn (``model``).

    ``name`` is the key of the published messages and part of the checkpoint's file name;
    ``family`` the model family (see :mod:`streamem.models.registry`).
    ``init_size`` points (at least ``n_components``) are buffered before the first
    initialisation, which keeps the best of ``n_init`` tries. Both default to the library's
    ``partial_fit`` defaults (null): a warm-up of the first micro-batch or ``3 K (d + 1)``
    points if that is more, and three candidate starts kept by their log-likelihood.
    Polyak-Ruppert ``averaging`` only makes sense with the decreasing ``power`` schedule.

    The ``lda`` family (topics of ``input.format: text`` documents) needs ``vocabulary`` (and
    no other family takes one); each published version carries the ``snapshot_top_words``
    heaviest words of every topic with their weights, and the whole topic-word matrix only
    with ``snapshot_components: true``.

    ``n_symbols`` is the ``categorical_hmm``'s alphabet, status codes ``0 .. n_symbols - 1``
    (null: the warm-up's largest code plus one, and a larger code later is dead-lettered).

    ``initial`` names a fitted model document (``model.to_json()``, ``streamem fit --out``,
    e.g. a backfill on a Dask cluster): without a checkpoint the daemon starts from it and
    continues with the mass of its statistics behind it (``n`` units: the first batch of ``m``
    points takes the step ``m / (n + m)``, or a forgetting schedule's own step if larger). Its
    family, ``n_components``, ``covariance_type``, ``vocabulary`` and features must be the
    configuration's; ``schedule`` and ``averaging`` are the configuration's; its other
    hyper-parameters are kept. A checkpoint, once written, wins over it (the file is read only
    when the daemon starts without a checkpoint, so it may be removed after that).

    Examples
    --------
    >>> ModelSettings(n_components=4, covariance_type="diag").schedule.kind
    'power'
    """

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")] = "sensors"
    family: FamilyName = family_names()[0]
    n_components: PositiveInt = 3
    covariance_type: Literal["full", "diag", "spherical", "tied"] = "full"
    reg_covar: Annotated[float, Field(ge=0)] = 1e-6
    init_size: PositiveInt | None = None
    n_init: PositiveInt | None = None
    seed: Annotated[int, Field(ge=0)] = 0
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    averaging: bool = False
    vocabulary: VocabularySettings | None = None
    snapshot_top_words: PositiveInt = 10
    snapshot_components: bool = False
    n_symbols: PositiveInt | None = None
    initial: Annotated[Path, Field(strict=False)] | None = None

    @_model_validator(mode="after")
    def _check_consistency(self) -> ModelSettings:
        takes = _families_taking("vocabulary")
        if (self.family in takes) != (self.vocabulary is not None):
            raise _rule_error(
                "vocabulary",
                f"expected a vocabulary (words, file or n_features) with family {self.family!r}, "
                "received null"
                if self.family in takes
                else f"expected null with family {self.family!r} (a vocabulary is for topic "
                f"models, family {_either(takes)}), received {self.vocabulary}",
            )
        symbols = _families_taking("n_symbols")
        if self.n_symbols is not None and self.family not in symbols:
            raise _rule_error(
                "n_symbols",
                f"expected null with family {self.family!r} (an alphabet's size is for "
                f"family {_either(symbols)}), received {self.n_symbols}",
            )
        if self.init_size is not None and self.init_size < self.n_components:
            raise _rule_error(
                "init_size",
                f"expected at least n_components ({self.n_components}) points, "
                f"received {self.init_size}",
            )
        if self.averaging and self.schedule.kind != "power":
            raise _rule_error(
                "averaging",
                f"expected false with schedule kind {self.schedule.kind!r} (averaging needs "
                f"the decreasing 'power' schedule), received true",
            )
        return self


class DriftSettings(_Section):
    """Drift detection on the batch log-likelihood (``drift``).

    The detector watches the mean log-likelihood of each micro-batch under the model before the
    batch is learned, and reports a drift when it falls. With ``response: boost`` a detected
    drift raises the step size to ``boost_step_size`` for a while, so the model forgets faster
    (a decreasing ``power`` schedule restarts from there; ``constant`` and ``half_life``
    schedules do not change); ``none`` only reports it.

    ``min_batches`` batches are watched before a drift can be reported. ``threshold`` is the
    Page-Hinkley alarm level in nats (the cumulative fall of the batch mean log-likelihood) and
    ``delta`` its tolerated fall per batch; for ADWIN ``delta`` is the confidence value in
    (0, 1). ``null`` keeps river's default (0.005 for Page-Hinkley, 0.002 for ADWIN). The noise
    of a batch mean grows as ``batch_size ** -0.5``: with batches of a few dozen points, raise
    ``threshold`` (or ``delta``) to avoid false alarms.

    Examples
    --------
    >>> DriftSettings(detector="adwin").response
    'boost'
    """

    enabled: bool = True
    detector: Literal["page_hinkley", "adwin"] = "page_hinkley"
    response: Literal["boost", "none"] = "boost"
    boost_step_size: Fraction = 0.2
    min_batches: PositiveInt = 30
    threshold: PositiveFloat = 10.0
    delta: PositiveFloat | None = None

    @_model_validator(mode="after")
    def _check_delta(self) -> DriftSettings:
        if self.detector == "adwin" and self.delta is not None and not self.delta < 1:
            raise _rule_error(
                "delta",
                f"expected a confidence value in (0, 1) with detector 'adwin', "
                f"received {self.delta}",
            )
        return self


class GuardSettings(_Section):
    """What keeps absurd points out of the model (``guard``); see :mod:`streamem.service.guard`.

    A refused update never drops its good points: the daemon finds the points that made the
    engine refuse it and dead-letters them (``degenerate``), then learns the others. Points
    whose values are too large for their statistics (``abs(x) > 1e150``) are ``degenerate``
    before they reach the model, warm-up included. Before the model starts, a point far outside
    the bulk of the points kept so far is an ``outlier`` (one absurd row must not shape the
    starting values), and so it is until the model made ``warm_batches`` updates; from then on
    a point whose log-density is more than ``outlier_margin`` nats below the
    model's smoothed mean log-likelihood per point is an ``outlier`` (dead-lettered), unless
    more than ``max_outlier_fraction`` of its batch is: that is a change of regime, learned in
    full so the model can follow it. ``outliers: false`` learns every finite point, like the
    library's ``partial_fit`` (parity with ``fit``). ``/readyz`` answers 503 after
    ``unready_after_failed_batches`` consecutive batches whose update failed.

    Examples
    --------
    >>> GuardSettings().outlier_margin
    30.0
    """

    outliers: bool = True
    outlier_margin: PositiveFloat = OUTLIER_MARGIN
    warm_batches: PositiveInt = 10
    max_outlier_fraction: Fraction = MAX_OUTLIER_FRACTION
    unready_after_failed_batches: PositiveInt = 3


class StateSettings(_Section):
    """Where and how often the checkpoint is written (``state``).

    Examples
    --------
    >>> StateSettings(dir="/var/lib/streamem").dir
    PosixPath('/var/lib/streamem')
    """

    dir: Annotated[Path, Field(strict=False)] = Path("./state")

    @field_validator("dir", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError(
                "config_rule", "expected a directory path, received an empty string"
            )
        return value

    checkpoint_every_batches: PositiveInt = 10
    checkpoint_every_seconds: PositiveFloat = 5.0


class MetricsSettings(_Section):
    """The Prometheus endpoint (``metrics``); ``port: 0`` picks a free port.

    Examples
    --------
    >>> MetricsSettings().port
    9108
    """

    enabled: bool = True
    address: Annotated[str, StringConstraints(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = 9_108


class LoggingSettings(_Section):
    """Logging (``logging``): a level (case-insensitive) and ``text`` or ``json`` lines.

    Examples
    --------
    >>> LoggingSettings(level="debug").level
    'DEBUG'
    """

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(_Section):
    """The whole configuration of the daemon; load it with :func:`load_config`.

    Examples
    --------
    >>> settings = Settings()
    >>> settings.model.n_components, settings.input.format, settings.kafka.topics
    (3, 'json', ['sensors'])
    >>> settings.consumer_kwargs()["bootstrap_servers"]
    ['127.0.0.1:9092']
    """

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    input: InputSettings = Field(default_factory=InputSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @_model_validator(mode="after")
    def _check_documents(self) -> Settings:
        readers = [spec.name for spec in family_specs() if spec.input_kind == "documents"]
        if (self.input.format == "text") != (self.model.family in readers):
            raise _rule_error(
                "input.format",
                f"expected 'text' with model.family {_either(readers)} (a topic model learns "
                "documents) "
                f"and a format of points with any other family; received {self.input.format!r} "
                f"with model.family {self.model.family!r}",
            )
        return self

    @_model_validator(mode="after")
    def _check_initial(self) -> Settings:
        if self.model.initial is not None and self.output.statistics_topic is not None:
            raise _rule_error(
                "model.initial",
                "expected null with output.statistics_topic (every replica would count the "
                f"initial model's mass once), received {str(self.model.initial)!r}",
            )
        return self

    @_model_validator(mode="after")
    def _check_results(self) -> Settings:
        topic = self.output.results_topic
        if topic is None:
            return self
        if family_spec(self.model.family).results is None:
            raise _rule_error(
                "output.results_topic",
                f"expected null for model.family {self.model.family!r} (it declares no "
                f"results), received {topic!r}",
            )
        others: dict[str, set[str | None]] = {
            "kafka.topics": set(self.kafka.topics),
            "output.topic": {self.output.topic},
            "output.dead_letter_topic": {self.output.dead_letter_topic},
            "output.statistics_topic": {self.output.statistics_topic},
        }
        for key, topics in others.items():
            if topic in topics:
                raise _rule_error(
                    "output.results_topic",
                    f"expected a topic of its own, received {topic!r}, which is also {key}",
                )
        return self

    @_model_validator(mode="after")
    def _check_sequences(self) -> Settings:
        if self.input.sequence_key is not None and not family_spec(self.model.family).sequential:
            raise _rule_error(
                "input.sequence_key",
                f"expected null for model.family {self.model.family!r} (its readings are "
                f"independent rows), received {self.input.sequence_key!r}",
            )
        return self

    def consumer_kwargs(self) -> dict[str, Any]:
        """Shortcut for ``self.kafka.consumer_kwargs()``, see :meth:`KafkaSettings.consumer_kwargs`.

        Examples
        --------
        >>> Settings().consumer_kwargs()["client_id"]
        'streamem'
        """
        return self.kafka.consumer_kwargs()

    def producer_kwargs(self) -> dict[str, Any]:
        """Shortcut for ``self.kafka.producer_kwargs()``, see :meth:`KafkaSettings.producer_kwargs`.

        Examples
        --------
        >>> Settings().producer_kwargs()["enable_idempotence"]
        True
        """
        return self.kafka.producer_kwargs()


# --------------------------------------------------------------------------------------------
# YAML: the 1.2 core schema for scalars, duplicate keys refused
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """A safe loader with YAML 1.2 booleans and numbers (``1e-6`` is a float, ``no`` a string).

    Anchors and aliases are refused: a config has no need of them, and nested aliases expand
    exponentially (a "billion laughs" document takes minutes and gigabytes before failing).
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not allowed in a streamem config", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Hashable] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text)


_REPLACED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _sub_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """Return the settings class of field ``name`` of ``model`` if it is a section."""
    annotation = model.model_fields[name].annotation
    for kind in (annotation, *get_args(annotation)):  # a section or an optional section
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def _secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Return the paths of every secret (``SecretStr``) key below ``model``."""
    paths: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        section = _sub_model(model, name)
        if section is not None:
            paths.extend(_secret_paths(section, (*prefix, name)))
        elif field.annotation is SecretStr or SecretStr in get_args(field.annotation):
            paths.append((*prefix, name))
    return paths


_SECRETS = frozenset(_secret_paths(Settings))


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + _ENV_SEPARATOR.join(path).upper()


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _received(value: Any) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _allowed_keys(loc: tuple[str | int, ...]) -> list[str]:
    """Return the keys allowed beside the last element of ``loc`` (its parent's fields)."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        if model is None or not isinstance(part, str) or part not in model.model_fields:
            return []
        model = _sub_model(model, part)
    return sorted(model.model_fields) if model is not None else []


def _read_file(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            source, (ConfigProblem("", f"config file {source!r} not found"),)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = ConfigProblem("", f"cannot read config file {source!r}: {exc}")
        raise ConfigError(source, (problem,)) from exc
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as exc:
        problem = ConfigProblem("", f"not valid YAML: {exc}")
        raise ConfigError(source, (problem,)) from exc
    if data is None or data == {}:  # a file that names nothing is a mistake, not the defaults
        problem = ConfigProblem(
            "",
            f"config file {source!r} sets nothing (it is empty or only comments): give the "
            "sections to set, e.g. from configs/sensors-json.yaml",
        )
        raise ConfigError(source, (problem,))
    if not isinstance(data, dict):
        problem = ConfigProblem("", f"expected a mapping of sections, received {_received(data)}")
        raise ConfigError(source, (problem,))
    problems = []
    for secret in sorted(_SECRETS):
        node: Any = data
        for part in secret[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and secret[-1] in node:
            problems.append(
                ConfigProblem(
                    _dotted(secret),
                    f"secrets are read from the environment only: remove it from the file and "
                    f"set {_env_name(secret)}",
                )
            )
    if problems:
        raise ConfigError(source, tuple(problems))
    return data


def _section_names() -> list[str]:
    return list(Settings.model_fields)


def _resolve_env_path(name: str) -> tuple[tuple[str, ...] | None, ConfigProblem | None]:
    """Map an environment variable's name to a config path.

    Returns ``(path, None)`` for a config variable, ``(None, problem)`` for a malformed one and
    ``(None, None)`` for a ``STREAMEM_`` variable that is not about the config.
    """
    rest = name[len(ENV_PREFIX) :].lower()
    sections = _section_names()
    if _ENV_SEPARATOR not in rest:
        if any(rest == section or rest.startswith(section + "_") for section in sections):
            hint = f"separate levels with a double underscore, e.g. {ENV_PREFIX}KAFKA__GROUP_ID"
            return None, ConfigProblem(name, f"not a config key; {hint}")
        return None, None
    path = tuple(rest.split(_ENV_SEPARATOR))
    model: type[BaseModel] | None = Settings
    for depth, part in enumerate(path):
        if model is None or part not in model.model_fields:
            where = _dotted(path[: depth + 1])
            if model is None:
                message = f"{_dotted(path[:depth])} has no sub-keys"
            else:
                message = f"unknown key; expected one of: {', '.join(sorted(model.model_fields))}"
            return None, ConfigProblem(where, f"{message} (from environment variable {name})")
        model = _sub_model(model, part)
    return path, None


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _apply_environment(
    data: dict[str, Any], environ: Mapping[str, str]
) -> dict[tuple[str, ...], str]:
    """Write the ``STREAMEM_`` overrides of ``environ`` into ``data``; return path -> variable."""
    sources: dict[tuple[str, ...], str] = {}
    problems: list[ConfigProblem] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        path, problem = _resolve_env_path(name)
        if problem is not None:
            problems.append(problem)
        if path is None:
            continue
        raw = environ[name]
        value: Any
        if path in _SECRETS:
            value = raw  # never YAML-parsed: a password such as "null" or "0123" stays itself
        else:
            try:
                value = _parse_yaml(raw) if raw.strip() else None
            except yaml.YAMLError as exc:
                problems.append(ConfigProblem(_dotted(path), f"cannot parse {name} as YAML: {exc}"))
                continue
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if isinstance(value, dict) and isinstance(node.get(path[-1]), dict):
            _deep_merge(node[path[-1]], value)
        else:
            node[path[-1]] = value
        sources[path] = name
    if problems:
        raise ConfigError("environment", tuple(problems))
    return sources


_REWORDINGS = re.compile(
    r"^(?P<kind>List|String|Dictionary) should (?P<verb>have|match) (?P<what>.*?)"
    r"(?: after validation)?(?:, not \d+)?$"
)


def _reword(match: re.Match[str]) -> str:
    """Reword pydantic's "List should have at least 1 item ..." as "expected a list with ..."."""
    noun = match["kind"].lower()
    link = "with" if match["verb"] == "have" else "matching"
    return f"expected a {noun} {link} {match['what']}"


def _describe(error: Any, sources: Mapping[tuple[str, ...], str]) -> ConfigProblem:
    """Turn one pydantic error into a problem naming the key, the expectation and the input."""
    loc = tuple(error["loc"])
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "config_rule" and "field" in ctx:
        loc = (*loc, ctx["field"])
    secret = tuple(str(part) for part in loc) in _SECRETS
    if kind == "extra_forbidden":
        message = f"unknown key; expected one of: {', '.join(_allowed_keys(loc))}"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = str(error["msg"])
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        message = _REWORDINGS.sub(_reword, message)
        if message.startswith("Input should be "):
            expected = message.removeprefix("Input should be ")
            if expected.startswith(("greater", "less")):
                expected = "a value " + expected
            message = f"expected {expected}"
        if kind != "config_rule" or "field" not in ctx:  # model rules say what they received
            received = "<hidden>" if secret else _received(error.get("input"))
            message = f"{message}, received {received}"
    for path, name in sources.items():
        if loc[: len(path)] == path or path[: len(loc)] == loc:
            message += f" (from environment variable {name})"
            break
    return ConfigProblem(_dotted(loc), message)


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the daemon's configuration.

    Parameters
    ----------
    path
        The YAML file; None uses the defaults (plus the environment).
    environ
        The environment to read overrides and secrets from; None reads ``os.environ``. A
        variable ``STREAMEM_<SECTION>__<KEY>[__<KEY>...]`` overrides that key; one that names no
        key, or a ``STREAMEM_<SECTION>_...`` variable with a single underscore, is an error.
        Other ``STREAMEM_`` variables without a double underscore (``STREAMEM_CONFIG``,
        ``STREAMEM_TEST_SEED``, ...) are not config keys and are ignored.

    Returns
    -------
    Settings
        The validated, immutable settings.

    Raises
    ------
    ConfigError
        If the file is missing or not YAML, a key is unknown, a value is invalid or values are
        inconsistent; the message names every bad key by its dotted path.

    Examples
    --------
    >>> settings = load_config(None, {"STREAMEM_MODEL__N_COMPONENTS": "4",
    ...                               "STREAMEM_KAFKA__TOPICS": "[a, b]"})
    >>> settings.model.n_components, settings.kafka.topics
    (4, ['a', 'b'])
    """
    environ = os.environ if environ is None else environ
    source = "defaults" if path is None else str(path)
    data = {} if path is None else _read_file(Path(path))
    try:
        sources = _apply_environment(data, environ)
    except ConfigError as error:
        raise ConfigError(source, error.problems) from None
    try:
        return Settings.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = tuple(_describe(error, sources) for error in exc.errors(include_url=False))
        raise ConfigError(source, problems) from None
