"""The ProfilingSession spec, parsed into typed values the rest of the operator relies on.

The API server already enforces the CRD schema and its CEL rules; parsing here re-checks what the
operator depends on, so that a session stored before a schema change fails with a clear message
instead of a KeyError deep in a capture.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

from spikeprof.core.alerts import AlertMatcher
from spikeprof.core.quantities import parse_bytes, parse_duration, parse_quantity
from spikeprof.core.retention import RetentionPolicy
from spikeprof.core.rules import Metric, Threshold
from spikeprof.core.selector import LabelSelector
from spikeprof.errors import SpikeprofError

ProfileType = Literal[
    "cpu", "heap", "allocs", "goroutine", "block", "mutex", "threadcreate", "trace"
]
PROFILE_TYPES: Final = frozenset(get_args(ProfileType))
SAMPLED_TYPES: Final = frozenset({"cpu", "trace"})
DEFAULT_SECONDS: Final = {"cpu": 30.0, "trace": 5.0}
MIN_SECONDS, MAX_SECONDS = 1.0, 300.0
# A leak pair: a second profile this long after the first, to see what grew in between.
# Only heap: an allocs profile holds the same four sample types, so its pair would say nothing
# the heap pair does not, and the other types do not measure memory.
PAIRED_TYPES: Final = frozenset({"heap"})
MIN_PAIR, MAX_PAIR = 1.0, 300.0
DAPR_PROFILE_PORT: Final = 7777
DAPR_CONTAINER: Final = "daprd"
# direct dials the pod IP; portForward tunnels through the API server; auto tries direct first.
ACCESS_MODES: Final = ("direct", "portForward", "auto")
METRIC_SOURCES: Final = ("metricsServer", "prometheus", "scrape")
# Evaluation interval when the session sets none: about the source's own resolution.
DEFAULT_INTERVAL: Final = {"metricsServer": 15.0, "prometheus": 15.0, "scrape": 5.0}
RULE_METRICS: Final = ("cpu", "memory", "goroutines", "heap")
# predict: the horizon and the fitting window; a line through two points is no trend.
MIN_PREDICT_SECONDS, MAX_PREDICT_SECONDS = 1.0, 3600.0
MIN_TREND_SAMPLES: Final = 3
NotifyFormat = Literal["json", "slack"]
NOTIFY_FORMATS: Final = frozenset(get_args(NotifyFormat))
MAX_WEBHOOKS: Final = 8  # the CRD's maxItems too


class SpecError(SpikeprofError, ValueError):
    """The session's spec cannot be acted on; the message names the field and the problem."""


@dataclass(frozen=True)
class ProfileRequest:
    type: ProfileType
    seconds: float | None  # sampling time, cpu and trace only
    gc: bool = False
    pair: float | None = None  # heap only: seconds until a second profile (a leak pair)

    @property
    def endpoint(self) -> str:
        """The path under the pprof prefix that serves this profile."""
        return {"cpu": "profile"}.get(self.type, self.type)

    @property
    def query(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self.seconds is not None:
            params["seconds"] = f"{self.seconds:g}"
        if self.gc:
            params["gc"] = "1"
        return params

    @property
    def file_name(self) -> str:
        # A Go execution trace is not a pprof protobuf; its name says so (read with go tool trace).
        return "trace.out" if self.type == "trace" else f"{self.type}.pb.gz"

    @property
    def second_file_name(self) -> str:
        """The second profile of a leak pair, next to the first."""
        return f"{self.type}.second.pb.gz"

    def parameters(self) -> dict[str, Any]:
        """The parameters as recorded in metadata.json."""
        out: dict[str, Any] = {"type": self.type}
        if self.seconds is not None:
            out["seconds"] = self.seconds
        if self.gc:
            out["gc"] = True
        if self.pair is not None:
            out["pair"] = self.pair
        return out


@dataclass(frozen=True)
class TargetSpec:
    kind: Literal["pprof", "dapr"]
    port: int | None
    path_prefix: str
    container: str | None
    access: Literal["direct", "portForward", "auto"]
    enable_profiling: bool = False  # patch the owning workloads to turn profiling on (Dapr)
    dry_run: bool = False  # with enable_profiling: report what would be patched, patch nothing


@dataclass(frozen=True)
class Limits:
    max_concurrent: int
    max_profile_bytes: int
    fetch_timeout: float
    cooldown: float = 600.0
    max_captures: int | None = None
    expires_after: float | None = None


@dataclass(frozen=True)
class OnRestart:
    """trigger.onRestart: capture a container that restarted, once it has warmed up."""

    reasons: tuple[str, ...] = ()  # lastState.terminated.reason values; empty: any
    after: float = 30.0  # seconds after the container started again

    def wants(self, reason: str | None) -> bool:
        return not self.reasons or reason in self.reasons


@dataclass(frozen=True)
class TriggerSpec:
    immediate: bool = False
    baseline: bool = False  # a calm capture once armed, which later captures are diffed against
    source: str = "metricsServer"
    interval: float = 15.0
    thresholds: tuple[Threshold, ...] = ()
    scrape_port: int | None = None
    scrape_path: str = "/metrics"
    queries: tuple[tuple[str, str], ...] = ()  # metric -> PromQL overriding the default
    alerts: AlertMatcher | None = None  # Alertmanager alerts this session reacts to
    on_restart: OnRestart | None = None  # capture containers that restarted


@dataclass(frozen=True)
class ObjectStoreSpec:
    url: str
    secret_name: str | None = None
    endpoint: str | None = None
    region: str | None = None
    virtual_hosted_style: bool = False
    allow_http: bool = False


@dataclass(frozen=True)
class WebhookSpec:
    """One webhook told of the session's captures; its URL is in a Secret (it is a credential)."""

    secret_name: str
    secret_key: str
    format: NotifyFormat = "json"

    def describe(self) -> str:
        """How people find it again: the Secret and key, never the URL."""
        return f"Secret {self.secret_name} key {self.secret_key} ({self.format})"


@dataclass(frozen=True)
class SessionSpec:
    selector: LabelSelector
    target: TargetSpec
    profiles: tuple[ProfileRequest, ...]
    trigger: TriggerSpec
    limits: Limits
    volume_output: bool
    object_store: ObjectStoreSpec | None = None
    retention: RetentionPolicy | None = None
    notify: tuple[WebhookSpec, ...] = ()

    @property
    def immediate(self) -> bool:
        return self.trigger.immediate

    @property
    def longest_sampling(self) -> float:
        return max((p.seconds or 0.0 for p in self.profiles), default=0.0)


def _field(spec: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = spec.get(name) or {}
    if not isinstance(value, Mapping):
        raise SpecError(f"spec.{name} must be an object")
    return value


def _parse_profile(index: int, raw: Mapping[str, Any]) -> ProfileRequest:
    where = f"spec.profiles[{index}]"
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in PROFILE_TYPES:
        raise SpecError(f"{where}.type {kind!r} is not one of {', '.join(sorted(PROFILE_TYPES))}")
    seconds: float | None = None
    if "duration" in raw:
        if kind not in SAMPLED_TYPES:
            raise SpecError(f"{where}.duration applies only to cpu and trace profiles")
        try:
            seconds = parse_duration(str(raw["duration"]))
        except ValueError as error:
            raise SpecError(f"{where}.duration: {error}") from None
        if not MIN_SECONDS <= seconds <= MAX_SECONDS:
            raise SpecError(f"{where}.duration must be between 1s and 5m")
    elif kind in SAMPLED_TYPES:
        seconds = DEFAULT_SECONDS[kind]
    gc = bool(raw.get("gc", False))
    if gc and kind != "heap":
        raise SpecError(f"{where}.gc applies only to heap profiles")
    pair: float | None = None
    if "pair" in raw:
        if kind not in PAIRED_TYPES:
            raise SpecError(
                f"{where}.pair applies only to heap profiles: it takes a second heap profile "
                "later to show which allocation sites grew"
            )
        try:
            pair = parse_duration(str(raw["pair"]))
        except ValueError as error:
            raise SpecError(f"{where}.pair: {error}") from None
        if not MIN_PAIR <= pair <= MAX_PAIR:
            raise SpecError(f"{where}.pair must be between 1s and 5m")
    return ProfileRequest(cast(ProfileType, kind), seconds, gc, pair)


def _duration(where: str, raw: Any) -> float:
    try:
        return parse_duration(str(raw))
    except ValueError as error:
        raise SpecError(f"{where}: {error}") from None


def _parse_threshold(index: int, raw: Mapping[str, Any]) -> Threshold:
    where = f"spec.trigger.thresholds[{index}]"
    metric = raw.get("metric")
    if metric not in RULE_METRICS:
        raise SpecError(f"{where}.metric {metric!r} is not one of {', '.join(RULE_METRICS)}")
    name = str(raw.get("name") or f"{metric}-{index}")
    sustain = _duration(f"{where}.for", raw["for"]) if "for" in raw else 0.0
    spike = raw.get("spike")
    above = raw.get("above")
    predict = raw.get("predict")
    if [spike, above, predict].count(None) != 2:
        raise SpecError(f"{where} needs exactly one of above, spike or predict")
    typed_metric = cast(Metric, metric)
    if predict is not None:
        return _parse_prediction(where, name, typed_metric, sustain, predict)
    if spike is not None:
        window = _duration(f"{where}.spike.baselineWindow", spike.get("baselineWindow", "5m"))
        warmup = (
            _duration(f"{where}.spike.warmup", spike["warmup"]) if "warmup" in spike else window
        )
        try:
            minimum = parse_quantity(str(spike.get("minimum", "0")))
        except ValueError as error:
            raise SpecError(f"{where}.spike.minimum: {error}") from None
        return Threshold(
            name=name,
            metric=typed_metric,
            sustain=sustain,
            spike_percent=float(spike["increasePercent"]),
            baseline_window=window,
            warmup=min(warmup, window),
            minimum=minimum,
        )
    text = str(above)
    if text.endswith("%"):
        of = raw.get("of")
        if of not in ("limit", "request"):
            raise SpecError(f"{where}: above: {text} needs of: limit or of: request")
        if metric not in ("cpu", "memory"):
            raise SpecError(f"{where}: a percentage applies to cpu and memory only")
        try:
            percent = float(text[:-1])
        except ValueError:
            raise SpecError(f"{where}.above {text!r} is not a percentage") from None
        return Threshold(name=name, metric=typed_metric, percent=percent, of=of, sustain=sustain)
    if text.startswith("-"):
        # The CRD refuses it too; this is for a cluster whose CRD is older than the operator.
        raise SpecError(f"{where}.above {text!r} is negative: it would fire on every pod")
    try:
        value = parse_quantity(text)
    except ValueError as error:
        raise SpecError(f"{where}.above: {error}") from None
    return Threshold(name=name, metric=typed_metric, above=value, sustain=sustain)


def _parse_prediction(where: str, name: str, metric: Metric, sustain: float, raw: Any) -> Threshold:
    where = f"{where}.predict"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be an object such as {{reaches: limit, within: 2m}}")
    if metric != "memory":
        raise SpecError(f"{where} applies to metric memory only: pods have a limit for it")
    if raw.get("reaches", "limit") != "limit":
        raise SpecError(f"{where}.reaches {raw.get('reaches')!r} is not limit")
    if "within" not in raw:
        raise SpecError(f"{where}.within is required: how far ahead the trend is followed")
    within = _duration(f"{where}.within", raw["within"])
    window = _duration(f"{where}.window", raw.get("window", "1m"))
    if not MIN_PREDICT_SECONDS <= within <= MAX_PREDICT_SECONDS:
        raise SpecError(f"{where}.within must be between 1s and 1h")
    if not MIN_PREDICT_SECONDS <= window <= MAX_PREDICT_SECONDS:
        raise SpecError(f"{where}.window must be between 1s and 1h")
    min_samples = raw.get("minSamples", MIN_TREND_SAMPLES)
    if not isinstance(min_samples, int) or not MIN_TREND_SAMPLES <= min_samples <= 1000:
        raise SpecError(f"{where}.minSamples must be a whole number between 3 and 1000")
    return Threshold(
        name=name,
        metric=metric,
        sustain=sustain,
        predict_within=within,
        predict_window=window,
        min_samples=min_samples,
    )


def _parse_trigger(raw: Mapping[str, Any]) -> TriggerSpec:
    source = raw.get("metricsSource", "metricsServer")
    if source not in METRIC_SOURCES:
        raise SpecError(f"spec.trigger.metricsSource {source!r} is not one of {METRIC_SOURCES}")
    thresholds = tuple(_parse_threshold(i, t) for i, t in enumerate(raw.get("thresholds") or ()))
    names = [t.name for t in thresholds]
    if len(set(names)) != len(names):
        raise SpecError("spec.trigger.thresholds: rule names must be unique")
    if source == "metricsServer" and any(t.metric not in ("cpu", "memory") for t in thresholds):
        raise SpecError("spec.trigger: metricsServer reports cpu and memory only")
    interval = (
        _duration("spec.trigger.interval", raw["interval"])
        if "interval" in raw
        else DEFAULT_INTERVAL[source]
    )
    scrape = raw.get("scrape") or {}
    queries = raw.get("prometheus") or {}
    alerts = None
    if raw.get("alerts") is not None:
        try:
            alerts = AlertMatcher.from_spec(raw["alerts"])
        except ValueError as error:
            raise SpecError(f"spec.trigger.alerts.{error}") from None
        if not alerts.equal and not alerts.regex:
            raise SpecError(
                "spec.trigger.alerts needs at least one matchLabels or matchRegex entry"
            )
    return TriggerSpec(
        alerts=alerts,
        on_restart=_parse_on_restart(raw.get("onRestart")),
        immediate=bool(raw.get("immediate", False)),
        baseline=bool(raw.get("baseline", False)),
        source=source,
        interval=interval,
        thresholds=thresholds,
        scrape_port=scrape.get("port"),
        scrape_path=str(scrape.get("path", "/metrics")),
        queries=tuple(
            sorted(
                (metric, str(queries[f"{metric}Query"]))
                for metric in RULE_METRICS
                if f"{metric}Query" in queries
            )
        ),
    )


RESTART_REASON = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")  # the kubelet's CamelCase reasons
MAX_RESTART_AFTER = 3600.0


def _parse_on_restart(raw: Any) -> OnRestart | None:
    where = "spec.trigger.onRestart"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be an object such as {{reasons: [OOMKilled], after: 30s}}")
    reasons = raw.get("reasons") or []
    if not isinstance(reasons, list) or not all(
        isinstance(r, str) and RESTART_REASON.match(r) for r in reasons
    ):
        raise SpecError(
            f"{where}.reasons must list the kubelet's reasons for the last exit, such as "
            "OOMKilled or Error"
        )
    after = _duration(f"{where}.after", raw.get("after", "30s"))
    if not 0 <= after <= MAX_RESTART_AFTER:
        raise SpecError(f"{where}.after must be a duration up to 1h, such as 30s")
    return OnRestart(reasons=tuple(dict.fromkeys(reasons)), after=after)


def _parse_limits(raw: Mapping[str, Any]) -> Limits:
    try:
        max_bytes = parse_bytes(str(raw.get("maxProfileBytes", "64Mi")))
    except ValueError as error:
        raise SpecError(f"spec.limits.maxProfileBytes: {error}") from None
    max_captures = raw.get("maxCaptures")
    return Limits(
        max_concurrent=int(raw.get("maxConcurrent", 4)),
        max_profile_bytes=max_bytes,
        fetch_timeout=_duration("spec.limits.fetchTimeout", raw.get("fetchTimeout", "30s")),
        cooldown=_duration("spec.limits.cooldown", raw.get("cooldown", "10m")),
        max_captures=int(max_captures) if max_captures is not None else None,
        expires_after=(
            _duration("spec.limits.expiresAfter", raw["expiresAfter"])
            if "expiresAfter" in raw
            else None
        ),
    )


def parse_spec(spec: Mapping[str, Any]) -> SessionSpec:
    selector = LabelSelector.from_spec(_field(spec, "selector"))
    if selector.is_empty:
        raise SpecError("spec.selector is empty: it must name at least one label")

    raw_profiles = spec.get("profiles") or []
    if not raw_profiles:
        raise SpecError("spec.profiles must list at least one profile")
    profiles = tuple(_parse_profile(i, p) for i, p in enumerate(raw_profiles))
    types = [p.type for p in profiles]
    if len(set(types)) != len(types):
        raise SpecError("spec.profiles lists a profile type more than once")

    target = _field(spec, "target")
    kind = target.get("kind", "pprof")
    if kind not in ("pprof", "dapr"):
        raise SpecError(f"spec.target.kind {kind!r} is not pprof or dapr")
    # Dapr's injector makes daprd listen on the pod's loopback unless the pod says otherwise
    # (dapr.io/sidecar-listen-addresses, default "[::1],127.0.0.1"), so only port-forward
    # reaches its pprof; auto still dials pods whose daprd listens on the pod IP.
    access = target.get("access", "auto" if kind == "dapr" else "direct")
    if access not in ACCESS_MODES:
        raise SpecError(f"spec.target.access {access!r} is not one of {', '.join(ACCESS_MODES)}")
    port = target.get("port")
    if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        raise SpecError("spec.target.port must be a TCP port between 1 and 65535")
    enable_profiling = bool(target.get("enableProfiling", False))
    if enable_profiling and kind != "dapr":
        raise SpecError("spec.target.enableProfiling turns on Dapr's profiling: it needs kind dapr")

    output = _field(spec, "output")
    volume = output.get("volume")
    volume_output = isinstance(volume, Mapping) and bool(volume.get("enabled", True))
    object_store = _parse_object_store(output.get("objectStore"))
    if not volume_output and object_store is None:
        raise SpecError(
            "spec.output must say where artifacts go: set output.volume or output.objectStore"
        )
    retention = _parse_retention(output.get("retention"))

    return SessionSpec(
        selector=selector,
        target=TargetSpec(
            kind=kind,
            port=port,
            path_prefix=str(target.get("pathPrefix", "/debug/pprof")).rstrip("/") or "",
            container=target.get("container"),
            access=access,
            enable_profiling=enable_profiling,
            dry_run=bool(target.get("dryRun", False)),
        ),
        profiles=profiles,
        trigger=_parse_trigger(_field(spec, "trigger")),
        limits=_parse_limits(_field(spec, "limits")),
        volume_output=volume_output,
        object_store=object_store,
        retention=retention,
        notify=_parse_notify(spec.get("notify")),
    )


STORE_URL = re.compile(r"^(s3|gs|az)://[^/]+(/.*)?$")


def _parse_object_store(raw: Any) -> ObjectStoreSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise SpecError("spec.output.objectStore must be an object")
    url = str(raw.get("url", ""))
    if not STORE_URL.match(url):
        raise SpecError(
            f"spec.output.objectStore.url {url!r} is not s3://bucket/prefix, gs://... or az://..."
        )
    secret = raw.get("secretRef") or {}
    return ObjectStoreSpec(
        url=url,
        secret_name=secret.get("name"),
        endpoint=raw.get("endpoint"),
        region=raw.get("region"),
        virtual_hosted_style=bool(raw.get("virtualHostedStyle", False)),
        allow_http=bool(raw.get("allowHttp", False)),
    )


def _parse_retention(raw: Any) -> RetentionPolicy | None:
    if not raw:
        return None
    max_age = _duration("spec.output.retention.maxAge", raw["maxAge"]) if "maxAge" in raw else None
    max_count = int(raw["maxCount"]) if raw.get("maxCount") is not None else None
    try:
        return RetentionPolicy(max_age_seconds=max_age, max_count=max_count)
    except ValueError as error:
        raise SpecError(f"spec.output.retention: {error}") from None


SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")  # a Secret's data keys, as the API server allows


def _parse_notify(raw: Any) -> tuple[WebhookSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError("spec.notify must be a list of webhooks")
    if len(raw) > MAX_WEBHOOKS:
        raise SpecError(f"spec.notify lists more than {MAX_WEBHOOKS} webhooks")
    hooks = tuple(_parse_webhook(index, entry) for index, entry in enumerate(raw))
    places = [(h.secret_name, h.secret_key) for h in hooks]
    if len(set(places)) != len(places):
        raise SpecError("spec.notify names the same Secret key twice: each webhook once")
    return hooks


def _parse_webhook(index: int, raw: Any) -> WebhookSpec:
    where = f"spec.notify[{index}]"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be an object with secretRef and format")
    fmt = raw.get("format", "json")
    if fmt not in NOTIFY_FORMATS:
        raise SpecError(f"{where}.format {fmt!r} is not one of {', '.join(sorted(NOTIFY_FORMATS))}")
    ref = raw.get("secretRef")
    if not isinstance(ref, Mapping):
        raise SpecError(f"{where}.secretRef must name the Secret holding the webhook URL")
    name, key = ref.get("name"), ref.get("key")
    if not isinstance(name, str) or not name:
        raise SpecError(f"{where}.secretRef.name must name a Secret in the session's namespace")
    if not isinstance(key, str) or not SECRET_KEY.match(key):
        raise SpecError(
            f"{where}.secretRef.key must be the Secret's key holding the URL "
            "(letters, digits, '-', '_' and '.')"
        )
    return WebhookSpec(secret_name=name, secret_key=key, format=cast(NotifyFormat, fmt))
