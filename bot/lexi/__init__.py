"""LeadLex, the CRM whose AI assistant Lexi proposes the tasks: its HTTP client and its task model."""
