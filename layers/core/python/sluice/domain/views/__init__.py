"""Views: the one place each domain record becomes what a surface answers (a module per surface).

The domain's use cases and the edges call them; repositories never do (they return records, and
tests/unit/test_layering.py fails on a store module importing a view).
"""
