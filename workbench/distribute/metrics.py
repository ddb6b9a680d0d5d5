"""Prometheus metrics of the update server: requests, reports, ingest, and the fleet's serials."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workbench.distribute.fleet import FleetState
from workbench.distribute.telemetry import FleetRules, TelemetryTotals

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _FleetCollector(Collector):
    """Gauges computed from the fleet store at scrape time."""

    def __init__(self, state: Callable[[], FleetState]):
        self._state = state

    def collect(self) -> Iterator[Metric]:
        fleet = self._state()
        health = GaugeMetricFamily("workbench_fleet_servers", "Tower servers by health",
                                   labels=["health"])
        for name, count in fleet.counts.items():
            health.add_metric([name], count)
        yield health
        serials = GaugeMetricFamily("workbench_fleet_serial_servers",
                                    "Tower servers by the serial they run", labels=["serial"])
        for serial, count in fleet.serials.items():
            serials.add_metric([serial], count)
        yield serials
        scalars = [
            ("workbench_fleet_failed_servers", "Tower servers whose last attempt failed",
             sum(1 for s in fleet.servers if s.state == "failed")),
            ("workbench_fleet_expected_servers", "Tower servers in the inventory (fleet expect)",
             fleet.expected),
            ("workbench_fleet_never_reported_servers",
             "Servers in the inventory that never reported (also red)", fleet.never_reported),
            ("workbench_fleet_not_in_inventory_servers",
             "Reporting servers missing from their tower's inventory", fleet.not_in_inventory),
            ("workbench_repository_newest_serial",
             "Newest serial published in the update repository", float(fleet.newest_serial or 0)),
        ]
        for name, documentation, value in scalars:
            gauge = GaugeMetricFamily(name, documentation)
            gauge.add_metric([], value)
            yield gauge


class _RulesCollector(Collector):
    """The scanners' telemetry at scrape time: all-time counters, and the rules flagged now."""

    def __init__(self, totals: Callable[[], TelemetryTotals], rules: Callable[[], FleetRules]):
        self._totals = totals
        self._rules = rules

    def collect(self) -> Iterator[Metric]:
        totals = self._totals()
        hits = CounterMetricFamily("workbench_rule_hits", "Rule hits reported by the tower scanners",
                                   labels=["rule", "tower"])
        for (rule, tower), count in sorted(totals.rule_hits.items()):
            hits.add_metric([rule, tower], count)
        yield hits
        for name, documentation, values in (
                ("workbench_scanner_messages", "Messages scanned by the tower scanners", totals.messages),
                ("workbench_scanner_scan_seconds", "Seconds the tower scanners spent scanning",
                 totals.scan_seconds),
                ("workbench_scanner_errors", "Messages the tower scanners could not scan fully",
                 totals.errors)):
            family = CounterMetricFamily(name, documentation, labels=["tower"])
            for tower, value in sorted(values.items()):
                family.add_metric([tower], value)
            yield family
        storms = GaugeMetricFamily("workbench_rule_fp_storm",
                                   "1 for a rule whose hit rate jumped far above its baseline",
                                   labels=["rule"])
        for telemetry in self._rules().rules:
            if telemetry.storm:
                storms.add_metric([telemetry.rule], 1)
        yield storms


class ServerMetrics:
    """One registry per app, so several servers (tests) do not share counters."""

    def __init__(self, fleet_state: Callable[[], FleetState],
                 totals: Callable[[], TelemetryTotals] | None = None,
                 rules: Callable[[], FleetRules] | None = None):
        self.registry = CollectorRegistry()
        self.repository_requests = Counter(
            "workbench_repository_requests", "Repository file requests by kind and HTTP status",
            ["kind", "status"], registry=self.registry)
        self.repository_bytes = Counter(
            "workbench_repository_bytes", "Bytes of repository files sent (full responses)",
            ["kind"], registry=self.registry)
        self.reports = Counter("workbench_fleet_reports", "Fleet reports received by state",
                               ["state"], registry=self.registry)
        self.ingest = Counter("workbench_ingest_messages",
                              "Messages received on POST /v1/quarantine by result",
                              ["result"], registry=self.registry)
        self.spool = Counter("workbench_spool_messages",
                             "Messages taken from the quarantine/incoming spool by result",
                             ["result"], registry=self.registry)
        self.spool_errors = Counter("workbench_spool_drain_errors",
                                    "Spool drains that failed and will be retried",
                                    registry=self.registry)
        self.auth_failures = Counter("workbench_auth_failures",
                                     "Write requests refused for a missing, wrong or foreign token",
                                     registry=self.registry)
        self.too_large = Counter("workbench_request_too_large",
                                 "Requests refused because the body was over the limit",
                                 registry=self.registry)
        self.refused = Counter(
            "workbench_requests_refused",
            "Requests refused to protect the server: tower_busy (429) and server_busy (503) for "
            "bytes in flight, fleet_busy (503) for a locked fleet store",
            ["reason"], registry=self.registry)
        self.timeouts = Counter("workbench_request_timeouts",
                                "Connections closed because the client was too slow (408), by phase",
                                ["phase"], registry=self.registry)
        self.long_polls = Counter("workbench_repository_long_polls",
                                  "Conditional GETs of timestamp.json held with Prefer: wait",
                                  registry=self.registry)
        self.inflight_bytes = Gauge("workbench_inflight_request_bytes",
                                    "Bytes of request bodies being received now (reserved)",
                                    registry=self.registry)
        self.registry.register(_FleetCollector(fleet_state))
        if totals is not None and rules is not None:
            self.registry.register(_RulesCollector(totals, rules))

    def render(self) -> bytes:
        return generate_latest(self.registry)
