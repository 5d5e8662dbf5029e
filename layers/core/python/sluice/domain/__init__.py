"""Domain: the rules of Sluice, pure Python over repositories passed in."""
