module github.com/ada-lindqvist/dagcheck

go 1.22
