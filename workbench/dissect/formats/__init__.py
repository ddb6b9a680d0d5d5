"""One dissector module per format; ``workbench.dissect.registry`` lists them in priority order."""
