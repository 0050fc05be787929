module github.com/bargehq/barge/tools/tfschema-provider

go 1.26.0
