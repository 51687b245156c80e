"""The tests of lexi-bot: unit, HTTP scenario, browser and deployment tests, and their support code."""
