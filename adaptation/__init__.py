"""Test-time adaptation: `Adapter` (one update on a batch, with rollback) and `OnlineAdapter` (while acting)."""

from adaptation.online import OnlineAdaptationConfig, OnlineAdapter
from adaptation.test_time_adaptation import AdaptationConfig, Adapter

__all__ = ["AdaptationConfig", "Adapter", "OnlineAdaptationConfig", "OnlineAdapter"]
