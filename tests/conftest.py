"""Shared pytest setup: the peers rig's fixtures (kamailio, baresip_factory, tone_wav)."""

pytest_plugins = ["tests.rig.fixtures"]
