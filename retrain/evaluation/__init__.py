"""Champion against challenger: score both on the same prompts (`scoring`), then gate (`gates`, `gate_stats`)."""
