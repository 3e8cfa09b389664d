"""Two stored runs against each other: compare, the regression gate, gate.md and junit.xml."""
