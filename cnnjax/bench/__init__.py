"""`cnnjax bench` (`command`, timing the step in `timing`) and `cnnjax
bench-input` (`input_pipeline`)."""
