// The module path matches go_package in protos/flowrun/v1/*.proto
// ("github.com/flowrun/flowrun/gen/go/flowrun/v1"), so the stubs generated into gen/ by
// buf.gen.yaml are imported by that path. `go mod tidy` writes go.sum (and pins
// google.golang.org/genproto/googleapis/rpc, which grpc already depends on).
module github.com/flowrun/flowrun

go 1.22

require (
	google.golang.org/grpc v1.72.0
	google.golang.org/protobuf v1.36.6
)
