"""The daemon's configuration: file, environment overrides, validation and error messages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest
from kafka import KafkaConsumer, KafkaProducer

from streamem.errors import ValidationError
from streamem.service.config import ConfigError, InputSettings, Settings, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Every key of the contract in DESIGN.md / the brief, with the documented defaults.
CONTRACT_YAML = """
kafka:
  bootstrap_servers: "127.0.0.1:9092"
  group_id: streamem
  topics: [sensors]
  client_id: streamem
  consumer: {session_timeout_ms: 10000, heartbeat_interval_ms: 3000, max_poll_interval_ms: 300000,
             max_poll_records: 5000, fetch_max_bytes: 52428800, max_partition_fetch_bytes: 10485760,
             request_timeout_ms: 30000}
  producer: {linger_ms: 5, max_request_size: 4194304, compression_type: null}
  security: {protocol: PLAINTEXT, sasl_mechanism: null, sasl_plain_username: null,
             ssl_cafile: null, ssl_certfile: null, ssl_keyfile: null}
input:
  format: json
  features: [temp, hum]
  max_record_bytes: 1048576
  allow_missing: false
  csv_delimiter: ","
output:
  topic: streamem.models
  dead_letter_topic: streamem.dead-letter
  publish_every_batches: 1
  publish_every_seconds: 5.0
batching: {batch_size: 1000, max_wait_ms: 500}
model:
  name: sensors
  n_components: 3
  covariance_type: full
  reg_covar: 1.0e-6
  init_size: null
  n_init: null
  seed: 0
  schedule: {kind: power, alpha: 0.6, t0: 2.0, step_size: 0.01, half_life: 100000}
  averaging: false
drift: {enabled: true, detector: page_hinkley, response: boost, boost_step_size: 0.2}
state: {dir: ./state, checkpoint_every_batches: 10, checkpoint_every_seconds: 5.0}
metrics: {enabled: true, address: 127.0.0.1, port: 9108}
logging: {level: INFO, format: text}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamem.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(path: str | Path | None, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ or {})
    return info.value


# ---------------------------------------------------------------------------------------------
# Defaults, the contract, the example files
# ---------------------------------------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    settings = load_config(None, {})
    assert settings == Settings()
    assert settings.kafka.bootstrap_servers == ["127.0.0.1:9092"]
    assert settings.kafka.topics == ["sensors"]
    assert settings.kafka.consumer.heartbeat_interval_ms == 3000
    assert settings.kafka.producer.compression_type is None
    assert settings.kafka.security.protocol == "PLAINTEXT"
    assert settings.kafka.security.sasl_plain_password is None
    assert settings.input.format == "json"
    assert settings.input.features == ["temp", "hum"]
    assert settings.output.dead_letter_topic == "streamem.dead-letter"
    assert settings.batching.batch_size == 1000
    assert settings.model.covariance_type == "full"
    assert settings.model.reg_covar == 1e-6
    assert settings.model.schedule.kind == "power"
    assert settings.drift.detector == "page_hinkley"
    assert settings.state.dir == Path("state")
    assert settings.metrics.port == 9108
    assert settings.logging.format == "text"


def test_every_contract_key_is_accepted_with_its_default(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, CONTRACT_YAML), {}) == Settings()


@pytest.mark.parametrize("text", ["", "# nothing here\n", "{}\n"])
def test_a_file_that_sets_nothing_is_refused(tmp_path: Path, text: str) -> None:
    # issue 32, item 12: an empty file was taken for the defaults without a word
    with pytest.raises(ConfigError, match="sets nothing \\(it is empty or only comments\\)"):
        load_config(write(tmp_path, text), {})


def test_the_three_documented_example_configs_exist() -> None:
    names = {path.name for path in CONFIGS.glob("*.yaml")}
    assert {"sensors-json.yaml", "packed-batches.yaml", "diag-drifting.yaml"} <= names


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda path: path.name)
def test_every_example_config_loads(path: Path) -> None:
    settings = load_config(path, {})
    assert isinstance(settings, Settings)
    assert path.read_text(encoding="utf-8").startswith("#"), "each example starts with a comment"


def test_example_configs_match_their_purpose() -> None:
    sensors = load_config(CONFIGS / "sensors-json.yaml", {})
    assert (sensors.input.format, sensors.model.covariance_type) == ("json", "full")
    packed = load_config(CONFIGS / "packed-batches.yaml", {})
    assert packed.input.format == "packed_f32"
    assert packed.batching.batch_size > Settings().batching.batch_size
    drifting = load_config(CONFIGS / "diag-drifting.yaml", {})
    assert drifting.model.covariance_type == "diag"
    assert drifting.model.schedule.kind == "half_life"


def test_path_may_be_a_string(tmp_path: Path) -> None:
    path = write(tmp_path, "model: {n_components: 5}\n")
    assert load_config(str(path), {}).model.n_components == 5


def test_yaml_12_scalars_in_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        kafka: {topics: [no, on, off]}
        model: {reg_covar: 1e-3}
        """,
    )
    settings = load_config(path, {})
    assert settings.kafka.topics == ["no", "on", "off"]  # strings, not YAML 1.1 booleans
    assert settings.model.reg_covar == 1e-3


def test_settings_are_immutable() -> None:
    settings = load_config(None, {})
    with pytest.raises(pydantic.ValidationError):
        settings.model.n_components = 7


def test_logging_level_is_case_insensitive() -> None:
    assert load_config(None, {"STREAMEM_LOGGING__LEVEL": "debug"}).logging.level == "DEBUG"


# ---------------------------------------------------------------------------------------------
# Environment overrides
# ---------------------------------------------------------------------------------------------


def test_environment_overrides_numbers_strings_and_booleans() -> None:
    settings = load_config(
        None,
        {
            "STREAMEM_MODEL__N_COMPONENTS": "4",
            "STREAMEM_MODEL__REG_COVAR": "1e-3",
            "STREAMEM_MODEL__COVARIANCE_TYPE": "diag",
            "STREAMEM_DRIFT__ENABLED": "false",
            "STREAMEM_OUTPUT__PUBLISH_EVERY_SECONDS": "2",
        },
    )
    assert settings.model.n_components == 4
    assert settings.model.reg_covar == 1e-3
    assert settings.model.covariance_type == "diag"
    assert settings.drift.enabled is False
    assert settings.output.publish_every_seconds == 2.0


def test_environment_overrides_lists_and_nested_keys() -> None:
    settings = load_config(
        None,
        {
            "STREAMEM_KAFKA__TOPICS": "[a, b]",
            "STREAMEM_INPUT__FEATURES": "[x, y, z]",
            "STREAMEM_KAFKA__CONSUMER__SESSION_TIMEOUT_MS": "2000",
            "STREAMEM_KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
            "STREAMEM_MODEL__SCHEDULE__KIND": "constant",
        },
    )
    assert settings.kafka.topics == ["a", "b"]
    assert settings.input.features == ["x", "y", "z"]
    assert settings.kafka.consumer.session_timeout_ms == 2000
    assert settings.kafka.consumer.heartbeat_interval_ms == 500
    assert settings.model.schedule.kind == "constant"


def test_environment_bootstrap_servers_as_comma_separated_string() -> None:
    env = {"STREAMEM_KAFKA__BOOTSTRAP_SERVERS": "b1:9092, b2:9093"}
    assert load_config(None, env).kafka.bootstrap_servers == ["b1:9092", "b2:9093"]


def test_environment_null_and_whole_section() -> None:
    settings = load_config(
        None,
        {
            "STREAMEM_OUTPUT__DEAD_LETTER_TOPIC": "null",
            "STREAMEM_KAFKA__CONSUMER": "{session_timeout_ms: 2000, heartbeat_interval_ms: 500}",
        },
    )
    assert settings.output.dead_letter_topic is None
    assert settings.kafka.consumer.session_timeout_ms == 2000
    assert settings.kafka.consumer.max_poll_records == 5000  # merged, not replaced


def test_environment_section_name_alone_is_an_error() -> None:
    error = load_error(None, {"STREAMEM_BATCHING": "{batch_size: 5}"})
    assert error.keys == ("STREAMEM_BATCHING",)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "model: {n_components: 5, n_init: 2}\n")
    settings = load_config(path, {"STREAMEM_MODEL__N_COMPONENTS": "6"})
    assert settings.model.n_components == 6
    assert settings.model.n_init == 2


def test_unrelated_variables_are_ignored() -> None:
    env = {"PATH": "/bin", "STREAMEM_CONFIG": "x.yaml", "STREAMEM_TEST_SEED": "3", "KAFKA__X": "1"}
    assert load_config(None, env) == Settings()


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMEM_MODEL__N_INIT", "7")
    assert load_config(None).model.n_init == 7


def test_unknown_environment_key_is_named() -> None:
    error = load_error(None, {"STREAMEM_KAFKA__BOOTSTRAP_SERVER": "b:9092"})
    assert error.keys == ("kafka.bootstrap_server",)
    assert "STREAMEM_KAFKA__BOOTSTRAP_SERVER" in str(error)
    assert "bootstrap_servers" in str(error)  # the valid choices are listed


def test_unknown_environment_section_is_named() -> None:
    error = load_error(None, {"STREAMEM_KAFAK__GROUP_ID": "g"})
    assert error.keys == ("kafak",)
    assert "STREAMEM_KAFAK__GROUP_ID" in str(error)


def test_environment_key_below_a_value_is_an_error() -> None:
    error = load_error(None, {"STREAMEM_MODEL__N_COMPONENTS__X": "1"})
    assert error.keys == ("model.n_components.x",)


def test_single_underscore_environment_key_is_an_error() -> None:
    error = load_error(None, {"STREAMEM_MODEL_N_COMPONENTS": "4"})
    assert error.keys == ("STREAMEM_MODEL_N_COMPONENTS",)
    assert "double underscore" in str(error)


def test_bad_environment_value_names_key_and_variable() -> None:
    error = load_error(None, {"STREAMEM_MODEL__N_COMPONENTS": "many"})
    assert error.keys == ("model.n_components",)
    message = str(error)
    assert "expected a valid integer" in message
    assert "received 'many'" in message
    assert "STREAMEM_MODEL__N_COMPONENTS" in message


def test_unparseable_environment_yaml_is_named() -> None:
    error = load_error(None, {"STREAMEM_KAFKA__TOPICS": "[a, b"})
    assert error.keys == ("kafka.topics",)
    assert "STREAMEM_KAFKA__TOPICS" in str(error)


# ---------------------------------------------------------------------------------------------
# File errors
# ---------------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(error)
    assert "not found" in str(error)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "model:\n  n_components: [3\n"))
    assert "not valid YAML" in str(error)
    assert "line" in str(error)


def test_duplicate_key_in_file(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "model:\n  n_components: 3\n  n_components: 4\n"))
    assert "duplicate key 'n_components'" in str(error)


def test_file_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "- kafka\n- model\n"))
    assert "expected a mapping of sections" in str(error)


def test_unknown_top_level_key_in_file(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "modle: {n_components: 3}\n"))
    assert error.keys == ("modle",)
    assert "unknown key" in str(error)
    assert "model" in str(error)


def test_unknown_nested_key_in_file_lists_the_valid_ones(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "kafka:\n  consumer:\n    session_timeout: 2000\n"))
    assert error.keys == ("kafka.consumer.session_timeout",)
    assert "session_timeout_ms" in str(error)


def test_bad_value_names_key_expected_and_received(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "model: {covariance_type: fulll}\n"))
    assert error.keys == ("model.covariance_type",)
    message = str(error)
    assert "'full', 'diag', 'spherical' or 'tied'" in message
    assert "received 'fulll' (str)" in message
    assert "streamem.yaml" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "model: {n_components: 0, n_init: 0}\nbatching: {batch_size: -1}\n")
    error = load_error(path)
    assert set(error.keys) == {"model.n_components", "model.n_init", "batching.batch_size"}


def test_config_error_is_a_validation_error(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, "model: {n_components: 0}\n"))
    assert isinstance(error, ValidationError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("model: {n_components: true}", "model.n_components"),  # a bool is not an integer
        ("model: {n_components: '4'}", "model.n_components"),  # nor is a quoted string
        ("model: {n_components: 2.5}", "model.n_components"),
        ("model: {reg_covar: -1.0}", "model.reg_covar"),
        ("model: {name: 'has space'}", "model.name"),
        ("model: {schedule: {alpha: 0.5}}", "model.schedule.alpha"),
        ("model: {schedule: {kind: linear}}", "model.schedule.kind"),
        ("model: {schedule: {step_size: 0}}", "model.schedule.step_size"),
        ("output: {publish_every_seconds: .inf}", "output.publish_every_seconds"),
        ("kafka: {topics: []}", "kafka.topics"),
        ("kafka: {topics: [a, a]}", "kafka.topics"),
        ("kafka: {topics: ['bad topic']}", "kafka.topics[0]"),
        ("kafka: {bootstrap_servers: 9092}", "kafka.bootstrap_servers"),
        ("kafka: {bootstrap_servers: []}", "kafka.bootstrap_servers"),
        ("kafka: {producer: {compression_type: brotli}}", "kafka.producer.compression_type"),
        ("input: {format: xml}", "input.format"),
        ("input: {features: []}", "input.features"),
        ("input: {features: [a, b, a]}", "input.features"),
        ("input: {features: [a, '']}", "input.features[1]"),
        ("input: {csv_delimiter: '.'}", "input.csv_delimiter"),
        ("input: {csv_delimiter: ';;'}", "input.csv_delimiter"),
        ("input: {max_record_bytes: 0}", "input.max_record_bytes"),
        ("drift: {detector: cusum}", "drift.detector"),
        ("drift: {boost_step_size: 1.5}", "drift.boost_step_size"),
        ("metrics: {port: 70000}", "metrics.port"),
        ("logging: {format: xml}", "logging.format"),
        ("state: {checkpoint_every_batches: 0}", "state.checkpoint_every_batches"),
    ],
)
def test_invalid_values_are_named(tmp_path: Path, yaml_text: str, key: str) -> None:
    error = load_error(write(tmp_path, yaml_text + "\n"))
    assert error.keys == (key,)
    assert "received" in str(error) or "expected" in str(error)


def test_heartbeat_must_be_below_session_timeout(tmp_path: Path) -> None:
    path = write(
        tmp_path, "kafka: {consumer: {session_timeout_ms: 2000, heartbeat_interval_ms: 2000}}"
    )
    error = load_error(path)
    assert error.keys == ("kafka.consumer.heartbeat_interval_ms",)
    assert "below session_timeout_ms (2000)" in str(error)


def test_fetch_wait_must_be_below_request_timeout(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {consumer: {request_timeout_ms: 400, fetch_max_wait_ms: 500}}")
    assert load_error(path).keys == ("kafka.consumer.fetch_max_wait_ms",)


def test_idempotence_needs_acks_all(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {producer: {acks: 1}}")
    assert load_error(path).keys == ("kafka.producer.acks",)
    path = write(tmp_path, "kafka: {producer: {acks: 1, enable_idempotence: false}}")
    assert load_config(path, {}).kafka.producer.acks == 1


def test_init_size_must_cover_the_components(tmp_path: Path) -> None:
    path = write(tmp_path, "model: {n_components: 10, init_size: 5}")
    assert load_error(path).keys == ("model.init_size",)


def test_averaging_needs_the_power_schedule(tmp_path: Path) -> None:
    path = write(tmp_path, "model: {averaging: true, schedule: {kind: constant}}")
    assert load_error(path).keys == ("model.averaging",)
    path = write(tmp_path, "model: {averaging: true, schedule: {kind: power}}")
    assert load_config(path, {}).model.averaging is True


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------

SASL_YAML = """
kafka:
  security:
    protocol: SASL_SSL
    sasl_mechanism: SCRAM-SHA-512
    sasl_plain_username: streamem
"""
PASSWORD_VAR = "STREAMEM_KAFKA__SECURITY__SASL_PLAIN_PASSWORD"


def test_password_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SASL_YAML + "    sasl_plain_password: hunter2\n")
    error = load_error(path, {PASSWORD_VAR: "other"})
    assert error.keys == ("kafka.security.sasl_plain_password",)
    assert PASSWORD_VAR in str(error)
    assert "hunter2" not in str(error)


def test_ssl_key_password_in_the_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {security: {protocol: SSL, ssl_password: hunter2}}")
    error = load_error(path)
    assert error.keys == ("kafka.security.ssl_password",)
    assert "hunter2" not in str(error)


def test_password_from_the_environment(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, SASL_YAML), {PASSWORD_VAR: "hunter2"})
    password = settings.kafka.security.sasl_plain_password
    assert password is not None
    assert password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    assert settings.consumer_kwargs()["sasl_plain_password"] == "hunter2"
    assert settings.producer_kwargs()["sasl_plain_password"] == "hunter2"
    assert settings.consumer_kwargs()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert settings.consumer_kwargs()["security_protocol"] == "SASL_SSL"


@pytest.mark.parametrize("raw", ["null", "0123", "true", "[a, b]", "  spaced  "])
def test_password_is_taken_verbatim(tmp_path: Path, raw: str) -> None:
    settings = load_config(write(tmp_path, SASL_YAML), {PASSWORD_VAR: raw})
    password = settings.kafka.security.sasl_plain_password
    assert password is not None
    assert password.get_secret_value() == raw


def test_sasl_without_password_is_an_error(tmp_path: Path) -> None:
    error = load_error(write(tmp_path, SASL_YAML))
    assert error.keys == ("kafka.security.sasl_plain_password",)
    assert PASSWORD_VAR in str(error)


def test_sasl_without_mechanism_is_an_error() -> None:
    error = load_error(None, {"STREAMEM_KAFKA__SECURITY__PROTOCOL": "SASL_PLAINTEXT"})
    assert error.keys == ("kafka.security.sasl_mechanism",)


def test_sasl_options_without_sasl_protocol_are_an_error() -> None:
    error = load_error(None, {"STREAMEM_KAFKA__SECURITY__SASL_PLAIN_USERNAME": "u"})
    assert error.keys == ("kafka.security.sasl_plain_username",)


def test_ssl_options_without_ssl_protocol_are_an_error() -> None:
    error = load_error(None, {"STREAMEM_KAFKA__SECURITY__SSL_CAFILE": "/etc/ca.pem"})
    assert error.keys == ("kafka.security.ssl_cafile",)


def test_bad_secret_value_is_not_echoed() -> None:
    # A password that fails validation (here: SASL options under PLAINTEXT) is never printed.
    error = load_error(None, {PASSWORD_VAR: "hunter2"})
    assert error.keys == ("kafka.security.sasl_plain_password",)
    assert "hunter2" not in str(error)


# ---------------------------------------------------------------------------------------------
# Client keyword arguments
# ---------------------------------------------------------------------------------------------


def test_consumer_kwargs_are_kafka_python_options() -> None:
    settings = load_config(
        None,
        {
            "STREAMEM_KAFKA__BOOTSTRAP_SERVERS": "[b1:9092, b2:9092]",
            "STREAMEM_KAFKA__GROUP_ID": "g1",
            "STREAMEM_KAFKA__CONSUMER__MAX_POLL_RECORDS": "77",
        },
    )
    kwargs = settings.consumer_kwargs()
    assert set(kwargs) <= set(KafkaConsumer.DEFAULT_CONFIG)
    assert kwargs["bootstrap_servers"] == ["b1:9092", "b2:9092"]
    assert kwargs["group_id"] == "g1"
    assert kwargs["client_id"] == "streamem"
    assert kwargs["max_poll_records"] == 77
    assert kwargs["session_timeout_ms"] == 10000
    assert kwargs["heartbeat_interval_ms"] == 3000
    assert kwargs["request_timeout_ms"] == 30000
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["security_protocol"] == "PLAINTEXT"
    assert "sasl_plain_password" not in kwargs


def test_producer_kwargs_are_kafka_python_options() -> None:
    settings = load_config(None, {"STREAMEM_KAFKA__PRODUCER__COMPRESSION_TYPE": "gzip"})
    kwargs = settings.producer_kwargs()
    assert set(kwargs) <= set(KafkaProducer.DEFAULT_CONFIG)
    assert kwargs["compression_type"] == "gzip"
    assert kwargs["linger_ms"] == 5
    assert kwargs["max_request_size"] == 4194304
    assert kwargs["bootstrap_servers"] == ["127.0.0.1:9092"]
    assert "group_id" not in kwargs
    assert "compression_type" not in Settings().producer_kwargs()  # null: kafka-python default


def test_ssl_kwargs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kafka: {security: {protocol: SSL, ssl_cafile: /ca.pem, ssl_certfile: /c.pem, "
        "ssl_keyfile: /k.pem}}",
    )
    settings = load_config(path, {"STREAMEM_KAFKA__SECURITY__SSL_PASSWORD": "keypw"})
    kwargs = settings.consumer_kwargs()
    assert kwargs["ssl_cafile"] == "/ca.pem"
    assert kwargs["ssl_keyfile"] == "/k.pem"
    assert kwargs["ssl_password"] == "keypw"
    assert kwargs["ssl_check_hostname"] is True
    assert "sasl_mechanism" not in kwargs


def test_input_settings_dimension() -> None:
    assert InputSettings(features=["a", "b", "c"]).dimension == 3


def test_a_sequence_key_needs_a_sequential_family_and_named_fields() -> None:
    with pytest.raises(ConfigError, match=r"input\.sequence_key: expected null for model\.family"):
        load_config(None, {"STREAMEM_INPUT__SEQUENCE_KEY": "sensor"})
    with pytest.raises(ConfigError, match=r"input\.sequence_key: expected null with format 'csv'"):
        load_config(
            None, {"STREAMEM_INPUT__SEQUENCE_KEY": "sensor", "STREAMEM_INPUT__FORMAT": "csv"}
        )
    with pytest.raises(ConfigError, match="expected a field that is not a feature"):
        load_config(None, {"STREAMEM_INPUT__SEQUENCE_KEY": "temp"})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("state: {dir: ''}", "state.dir"),
        ("input: {features: [temp, hum], bounds: {vib: [0, 1]}}", "input.bounds"),
        ("input: {features: [temp, hum], bounds: {temp: [5, 1]}}", "input.bounds"),
        ("input: {features: [temp, hum], bounds: {temp: [1]}}", "input.bounds.temp"),
        ("guard: {outlier_margin: 0}", "guard.outlier_margin"),
        ("guard: {max_outlier_fraction: 2}", "guard.max_outlier_fraction"),
        ("guard: {unknown: 1}", "guard.unknown"),
    ],
)
def test_new_keys_are_validated_with_the_bad_key_named(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path, {})
    assert key in error.value.keys


def test_bounds_and_guard_keys_load(tmp_path: Path) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text(
        "input: {features: [temp, hum], bounds: {temp: [-40, 125]}}\n"
        "guard: {outliers: false, outlier_margin: 50}\n"
    )
    settings = load_config(path, {})
    assert settings.input.bounds == {"temp": [-40.0, 125.0]}
    assert (settings.guard.outliers, settings.guard.outlier_margin) == (False, 50.0)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    path = tmp_path / "daemon.yaml"
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    path.write_text("\n".join(levels))
    with pytest.raises(ConfigError, match="aliases"):
        load_config(path, {})


# ---- topic models: input.format text, model.family lda, model.vocabulary ---------------------

_LDA = {"STREAMEM_MODEL__FAMILY": "lda", "STREAMEM_INPUT__FORMAT": "text"}


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ)
    return [str(problem) for problem in caught.value.problems]


def test_a_topic_model_reads_text_with_a_vocabulary(tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("rain\nsun\n\nwind\n", encoding="utf-8")
    settings = load_config(None, {**_LDA, "STREAMEM_MODEL__VOCABULARY__FILE": str(words)})
    assert settings.input.features == ["text"]
    assert settings.model.vocabulary is not None
    assert settings.model.vocabulary.spec() == ("rain", "sun", "wind")
    hashed = load_config(None, {**_LDA, "STREAMEM_MODEL__VOCABULARY__N_FEATURES": "64"})
    assert hashed.model.vocabulary is not None
    assert hashed.model.vocabulary.build().n_features == 64


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STREAMEM_MODEL__FAMILY": "lda"}, "model.vocabulary: expected a vocabulary"),
        (
            {"STREAMEM_MODEL__FAMILY": "lda", "STREAMEM_MODEL__VOCABULARY": "{n_features: 8}"},
            "input.format: expected 'text' with model.family 'lda'",
        ),
        ({"STREAMEM_INPUT__FORMAT": "text"}, "input.format: expected 'text' with model.family"),
        (
            {"STREAMEM_MODEL__VOCABULARY": "{n_features: 8}"},
            "model.vocabulary: expected null with family 'gaussian_mixture'",
        ),
        (
            {**_LDA, "STREAMEM_MODEL__VOCABULARY": "{n_features: 8, words: [a]}"},
            "model.vocabulary.n_features: expected exactly one of words, file, n_features, "
            "received words, n_features",
        ),
        (  # issue 32, item 12: reported against model.vocabulary.words, a key not given
            {**_LDA, "STREAMEM_MODEL__VOCABULARY": "{n_features: 8, file: words.txt}"},
            "model.vocabulary.n_features: expected exactly one of words, file, n_features, "
            "received file, n_features",
        ),
        (
            {**_LDA, "STREAMEM_MODEL__VOCABULARY": "{words: [a, b, a]}"},
            "model.vocabulary.words: expected distinct words, received repeated ['a']",
        ),
        (
            {**_LDA, "STREAMEM_MODEL__VOCABULARY": "{file: /nonexistent/words.txt}"},
            "model.vocabulary.file: expected a readable UTF-8 file of words",
        ),
        (
            {**_LDA, "STREAMEM_MODEL__VOCABULARY": "{size: 8}"},
            "model.vocabulary.size: unknown key; expected one of: file, n_features, words",
        ),
        (
            {
                **_LDA,
                "STREAMEM_MODEL__VOCABULARY__N_FEATURES": "8",
                "STREAMEM_INPUT__FEATURES": "[a, b]",
            },
            "input.features: expected one name (that of the document) with format 'text'",
        ),
        (
            {
                **_LDA,
                "STREAMEM_MODEL__VOCABULARY__N_FEATURES": "8",
                "STREAMEM_MODEL__SNAPSHOT_TOP_WORDS": "0",
            },
            "model.snapshot_top_words: expected a value greater than or equal to 1",
        ),
    ],
)
def test_topic_model_settings_are_checked(environ: dict[str, str], expected: str) -> None:
    problems = _problems(environ)
    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"STREAMEM_OUTPUT__RESULTS_TOPIC": "sensors"}, "which is also kafka.topics"),
        ({"STREAMEM_OUTPUT__RESULTS_TOPIC": "streamem.models"}, "which is also output.topic"),
        (
            {"STREAMEM_OUTPUT__RESULTS_TOPIC": "r", "STREAMEM_OUTPUT__STATISTICS_TOPIC": "r"},
            "which is also output.statistics_topic",
        ),
        ({"STREAMEM_OUTPUT__ANOMALY_QUANTILE": "1"}, "output.anomaly_quantile"),
    ],
)
def test_the_results_topic_is_a_topic_of_its_own(environment: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, environment)
    assert load_config(None, {"STREAMEM_OUTPUT__RESULTS_TOPIC": "r"}).output.results_topic == "r"


def test_a_family_without_results_has_no_results_topic() -> None:
    from streamem.models.protocol import FamilySpec
    from streamem.models.registry import register, unregister

    register(
        FamilySpec("plain", "streamem.models.mixture.gaussian_mixture:GaussianMixture", (), {})
    )
    try:
        with pytest.raises(ConfigError, match=r"output\.results_topic: expected null for model"):
            load_config(
                None,
                {"STREAMEM_MODEL__FAMILY": "plain", "STREAMEM_OUTPUT__RESULTS_TOPIC": "r"},
            )
    finally:
        unregister("plain")
