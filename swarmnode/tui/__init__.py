"""The Textual dashboard: reads a node's status API only (`swarmnode tui`, `swarmnode join --tui`)."""

from swarmnode.tui.app import Dashboard
from swarmnode.tui.feed import DeadFeed, Feed, HttpFeed, RecordedFeed

__all__ = ["Dashboard", "DeadFeed", "Feed", "HttpFeed", "RecordedFeed"]
