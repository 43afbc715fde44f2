"""Query matching: MetaCLIP's substring rule (reference.py), the fast token automaton (automaton.py), counts (counts.py)."""
