"""Read models fed by the event log. One module per read model: its tables,
its handlers, its rebuild. `base` holds the machinery they share."""
