"""One dissector module per format; ``workbench.dissect.dissectors`` lists them in priority order."""
