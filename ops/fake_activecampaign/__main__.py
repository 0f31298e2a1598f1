"""`python -m fake_activecampaign`: the same as `contact-sync fake-activecampaign`."""

from __future__ import annotations

from fake_activecampaign.cli import main

raise SystemExit(main())
